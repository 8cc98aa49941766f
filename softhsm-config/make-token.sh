#!/usr/bin/env bash
# Makes a SoftHSM2 token in a folder of your choosing, for development and tests:
#   softhsm-config/make-token.sh DIR [LABEL]
# writes DIR/softhsm2.conf, DIR/tokens/ and DIR/pin (mode 0600, a fresh random PIN unless $HSMSIGND_PIN
# is set), then prints the line to export SOFTHSM2_CONF. Running it again keeps an existing token.
# Development only: the PIN sits in a file next to the token, which is fine for a throw-away token and
# nothing else.
set -euo pipefail

dir=${1:?usage: make-token.sh DIR [LABEL]}
label=${2:-hsmsignd}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
chmod 0700 "$dir" "$dir/tokens"
sed "s|@TOKENDIR@|$dir/tokens|" "$here/softhsm2.conf.in" > "$dir/softhsm2.conf"
export SOFTHSM2_CONF="$dir/softhsm2.conf"

if ! softhsm2-util --show-slots 2>/dev/null | grep -qE "^[[:space:]]*Label:[[:space:]]+$label[[:space:]]*$"; then
  umask 077
  pin=${HSMSIGND_PIN:-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  so_pin=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
  printf '%s\n' "$pin" > "$dir/pin"
  softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null
fi
chmod 0600 "$dir/pin"
echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
