// A program of OpenSSL's API only, as any application would use the provider: it loads `default` and
// `hsmsignd`, opens a key URI through OSSL_STORE, then forks PROCESSES children (after loading: the case a
// pre-forking server such as nginx is in) that each run THREADS threads signing COUNT messages with
// EVP_DigestSign, every signature checked by the default provider alone against the key's public half.
//
//   provider_client URI PROCESSES THREADS COUNT [sha256|sha384|sha512] [pss]
//
// Prints "signed N, failed N" and exits 0 only when every signature verified.
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

EVP_PKEY* load_key(const char* uri) {
  OSSL_STORE_CTX* store = OSSL_STORE_open(uri, nullptr, nullptr, nullptr, nullptr);
  if (store == nullptr) return nullptr;
  EVP_PKEY* key = nullptr;
  while (key == nullptr && !OSSL_STORE_eof(store)) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info != nullptr && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) key = OSSL_STORE_INFO_get1_PKEY(info);
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  return key;
}

// The public half as a key of the default provider alone: the check owes nothing to hsmsignd.
EVP_PKEY* default_public_key(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return nullptr;
  const unsigned char* p = der;
  EVP_PKEY* out = d2i_PUBKEY_ex(nullptr, &p, length, nullptr, "provider=default");
  OPENSSL_free(der);
  return out;
}

bool set_pss(EVP_PKEY_CTX* ctx) {
  return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) == 1;
}

bool sign_and_check(EVP_PKEY* key, EVP_PKEY* check, const char* md, bool pss) {
  unsigned char message[100];
  if (RAND_bytes(message, sizeof message) != 1) return false;
  EVP_MD_CTX* sign = EVP_MD_CTX_new();
  EVP_MD_CTX* verify = EVP_MD_CTX_new();
  EVP_PKEY_CTX* pctx = nullptr;
  std::vector<unsigned char> signature(1024);
  size_t length = signature.size();
  bool ok = EVP_DigestSignInit_ex(sign, &pctx, md, nullptr, nullptr, key, nullptr) == 1 && (!pss || set_pss(pctx)) &&
            EVP_DigestSign(sign, signature.data(), &length, message, sizeof message) == 1;
  ok = ok && EVP_DigestVerifyInit_ex(verify, &pctx, md, nullptr, "provider=default", check, nullptr) == 1 &&
       (!pss || set_pss(pctx)) && EVP_DigestVerify(verify, signature.data(), length, message, sizeof message) == 1;
  EVP_MD_CTX_free(sign);
  EVP_MD_CTX_free(verify);
  if (!ok) ERR_print_errors_fp(stderr);
  return ok;
}

int run_child(EVP_PKEY* key, EVP_PKEY* check, int threads, int count, const char* md, bool pss) {
  std::atomic<int> failed{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back([&] {
      for (int i = 0; i < count; ++i)
        if (!sign_and_check(key, check, md, pss)) failed.fetch_add(1);
    });
  for (auto& w : workers) w.join();
  return failed.load() == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s URI PROCESSES THREADS COUNT [sha256|sha384|sha512] [pss]\n", argv[0]);
    return 2;
  }
  const int processes = std::atoi(argv[2]), threads = std::atoi(argv[3]), count = std::atoi(argv[4]);
  const std::string md = argc > 5 ? argv[5] : "sha256";
  const bool pss = argc > 6 && std::string(argv[6]) == "pss";
  // default first: OpenSSL 3.0 takes the first provider that offers an algorithm, and its own keys and
  // key exchanges must come from default (docs/openssl.md).
  if (OSSL_PROVIDER_load(nullptr, "default") == nullptr || OSSL_PROVIDER_load(nullptr, "hsmsignd") == nullptr) {
    ERR_print_errors_fp(stderr);
    return 2;
  }
  EVP_PKEY* key = load_key(argv[1]);
  EVP_PKEY* check = key != nullptr ? default_public_key(key) : nullptr;
  if (key == nullptr || check == nullptr) {
    std::fprintf(stderr, "cannot load %s\n", argv[1]);
    ERR_print_errors_fp(stderr);
    return 2;
  }
  std::vector<pid_t> children;
  for (int p = 0; p < processes; ++p) {
    const pid_t pid = fork();
    if (pid == 0) _exit(run_child(key, check, threads, count, md.c_str(), pss));
    if (pid < 0) return 2;
    children.push_back(pid);
  }
  int failed_processes = 0;
  for (pid_t pid : children) {
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed_processes;
  }
  // The parent still signs after its children did: nothing it holds was spoiled by the fork.
  const bool parent_ok = sign_and_check(key, check, md.c_str(), pss);
  std::printf("processes %d, threads %d, signatures %d, failed processes %d, parent %s\n", processes, threads,
              processes * threads * count, failed_processes, parent_ok ? "ok" : "failed");
  EVP_PKEY_free(check);
  EVP_PKEY_free(key);
  return failed_processes == 0 && parent_ok ? 0 : 1;
}
