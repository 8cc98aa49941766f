// The size of a Token Status List as hsmsignd publishes it (its own encoder): TOKENS entries of which a
// FRACTION, picked at random, are revoked.
//
//   hsmsignd-bench-status-list-size [TOKENS=1000000] [FRACTION=0.001] [SEED=1]
//
// Prints: tokens revoked raw_bytes lst_chars (the base64url of the zlib stream, as in the token).
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "status_list/encoding.h"

int main(int argc, char** argv) {
  const std::uint64_t tokens = argc > 1 ? std::stoull(argv[1]) : 1'000'000;
  const double fraction = argc > 2 ? std::stod(argv[2]) : 0.001;
  std::mt19937_64 random(argc > 3 ? std::stoull(argv[3]) : 1);
  std::vector<std::uint8_t> bytes((tokens + 7) / 8, 0);
  const auto revoked = static_cast<std::uint64_t>(static_cast<double>(tokens) * fraction);
  std::uniform_int_distribution<std::uint64_t> index(0, tokens - 1);
  std::uint64_t set = 0;
  while (set < revoked) {
    const std::uint64_t i = index(random);
    if (bytes[i / 8] >> (i % 8) & 1) continue;
    hsmsignd::status_list::set_bit(bytes, i);
    ++set;
  }
  const std::string lst = hsmsignd::status_list::encode_list(bytes);
  std::printf("%llu %llu %zu %zu\n", static_cast<unsigned long long>(tokens), static_cast<unsigned long long>(set),
              bytes.size(), lst.size());
}
