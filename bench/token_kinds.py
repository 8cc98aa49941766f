#!/usr/bin/env python3
"""bench/token_kinds.sh's helper: makes one throw-away token of a kind with tests/e2e/tokens.py's factory
(read from there by path, not copied) and hands it to the shell, which measures and stops everything.

    bench/token_kinds.py KIND DIR LABEL

KIND: softhsm, nss, tpm or p11kit. Makes the token in DIR/token, starts its helper processes (swtpm,
dbus-daemon, tpm2-abrmd; p11-kit server) and exits, leaving them running. Writes, in DIR:
  pids        the helpers' pids, one a line, in the order they started (written as soon as the token is
              made, before anything else, so that the shell's trap finds them even if it is interrupted)
  token.toml  the daemon's [token] table (module, label, pin_file, init_args, require_local)
and prints shell assignments for `eval`: token_pids (the same pids), token_module, token_init_args,
token_pin_file, and token_env (env(1) arguments: --unset=NAME for what the kind removes from the
environment, NAME=VALUE for what it adds or changes). On failure the factory stops what it started and
this exits 1.
"""
import json
import os
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))
import tokens  # noqa: E402  (tests/e2e/tokens.py)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in tokens.KINDS:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(tokens.KINDS)}}} DIR LABEL")
    kind, folder, label = sys.argv[1], Path(sys.argv[2]).resolve(), sys.argv[3]
    factory = tokens.KINDS[kind](folder / "token", label)
    try:
        factory.create()
    except tokens.TokenError as e:
        sys.exit(f"token_kinds.py: the {kind} token: {e}")
    pids = factory.helper_pids()
    (folder / "pids").write_text("".join(f"{pid}\n" for pid in pids))

    table = factory.token_table(str(factory.pin_file))
    lines = ["[token]"]
    for key, value in table.items():
        lines.append(f"{key} = {'true' if value is True else 'false' if value is False else json.dumps(value)}")
    (folder / "token.toml").write_text("\n".join(lines) + "\n")

    env, here = factory.env(), os.environ
    env_args = [f"--unset={name}" for name in sorted(here) if name not in env]
    env_args += [f"{name}={value}" for name, value in sorted(env.items()) if here.get(name) != value]
    q = shlex.quote
    print(f"token_pids=({' '.join(str(p) for p in pids)})")
    print(f"token_module={q(factory.module)}")
    print(f"token_init_args={q(factory.init_args or '')}")
    print(f"token_pin_file={q(str(factory.pin_file))}")
    print(f"token_env=({' '.join(q(a) for a in env_args)})")


if __name__ == "__main__":
    main()
