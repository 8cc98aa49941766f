// The pool of logged-in sessions: many threads, sessions lost behind its back, a PIN changed under it.
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>

#include <atomic>
#include <thread>

#include "call_stats.h"
#include "crypto/verify.h"
#include "keys.h"
#include "sign.h"
#include "test_token.h"

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::random_id;
using hsmsignd::testing::TestToken;

CK_FUNCTION_LIST* raw(const SessionPool& pool) {
  return static_cast<CK_FUNCTION_LIST*>(pool.module().raw_function_list());
}

std::shared_ptr<Signer> make_signer(SessionPool& pool, Algorithm alg = Algorithm::ES256) {
  const Bytes id = random_id();
  {
    auto lease = pool.acquire().value();
    generate_key_pair(lease.session(), {alg, 2048, id, "pool-test"}).value();
  }
  return Signer::open(pool, id, alg).value();
}

TEST(SessionPool, SixteenThreadsShareFourSessionsAndEverySignatureIsValid) {
  auto pool = TestToken::get().open_pool(4);
  auto signer = make_signer(*pool);
  constexpr int kThreads = 16, kEach = 500;
  std::atomic<int> valid{0}, failed{0};
  std::atomic<std::size_t> most_in_use{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const std::string msg = "thread " + std::to_string(t) + " message " + std::to_string(i);
        auto sig = signer->sign(as_bytes(msg));
        std::size_t now = pool->in_use(), seen = most_in_use.load();
        while (now > seen && !most_in_use.compare_exchange_weak(seen, now)) {
        }
        if (sig && crypto::verify(signer->public_key(), as_bytes(msg), *sig))
          ++valid;
        else
          ++failed;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(valid.load(), kThreads * kEach);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LE(most_in_use.load(), 4u);
  EXPECT_EQ(pool->in_use(), 0u);
}

TEST(SessionPool, SessionsClosedBehindItsBackAreReplaced) {
  auto pool = TestToken::get().open_pool(4);
  auto signer = make_signer(*pool);
  ASSERT_TRUE(signer->sign(as_bytes("before")));
  // Closing every session also logs the application out of the token.
  ASSERT_EQ(raw(*pool)->C_CloseAllSessions(pool->token().slot), CKR_OK);
  for (int i = 0; i < 8; ++i) {  // more than the pool's size: every session has to be replaced
    auto sig = signer->sign(as_bytes("after " + std::to_string(i)));
    ASSERT_TRUE(sig) << sig.error().what();
    EXPECT_TRUE(crypto::verify(signer->public_key(), as_bytes("after " + std::to_string(i)), *sig));
  }
}

TEST(SessionPool, APinChangedUnderItIsTriedOnceAndNeverAgain) {
  auto pool = TestToken::get().open_pool(2);
  auto signer = make_signer(*pool);
  {
    auto lease = pool->acquire().value();
    std::string old_pin = TestToken::kPin, new_pin = "changed-pin-0815";
    ASSERT_EQ(raw(*pool)->C_SetPIN(lease.session().handle, reinterpret_cast<CK_UTF8CHAR*>(old_pin.data()),
                                   old_pin.size(), reinterpret_cast<CK_UTF8CHAR*>(new_pin.data()), new_pin.size()),
              CKR_OK);
  }
  ASSERT_EQ(raw(*pool)->C_CloseAllSessions(pool->token().slot), CKR_OK);

  const auto logins = call_stat("C_Login").calls.load();
  auto first = signer->sign(as_bytes("x"));
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().rv, CKR_PIN_INCORRECT) << first.error().what();
  for (int i = 0; i < 5; ++i) {
    auto again = signer->sign(as_bytes("x"));
    ASSERT_FALSE(again);
    EXPECT_TRUE(again.error().pin_final());
  }
  EXPECT_EQ(call_stat("C_Login").calls.load() - logins, 1u) << "a refused PIN must not be tried again";

  // Put the PIN back, so later tests in this process still log in.
  CK_SESSION_HANDLE s = 0;
  std::string old_pin = TestToken::kPin, new_pin = "changed-pin-0815";
  ASSERT_EQ(raw(*pool)->C_OpenSession(pool->token().slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s), CKR_OK);
  ASSERT_EQ(raw(*pool)->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(new_pin.data()), new_pin.size()), CKR_OK);
  ASSERT_EQ(raw(*pool)->C_SetPIN(s, reinterpret_cast<CK_UTF8CHAR*>(new_pin.data()), new_pin.size(),
                                 reinterpret_cast<CK_UTF8CHAR*>(old_pin.data()), old_pin.size()),
            CKR_OK);
  raw(*pool)->C_CloseSession(s);
}

TEST(SessionPool, WaitingForASessionIsBounded) {
  const auto& token = TestToken::get();
  auto pin = Pin::read_file(token.pin_file()).value();
  auto pool = SessionPool::open(token.module(), token.info(), std::move(pin), {1, std::chrono::milliseconds(150)}).value();
  auto held = pool->acquire().value();
  const auto start = std::chrono::steady_clock::now();
  auto second = pool->acquire();
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().kind, ErrorKind::busy);
  EXPECT_GE(waited, std::chrono::milliseconds(140));
  EXPECT_LT(waited, std::chrono::seconds(2));
}

TEST(SessionPool, ALeaseGoesBackWhenItGoesOutOfScope) {
  auto pool = TestToken::get().open_pool(2);
  {
    auto a = pool->acquire().value();
    auto b = pool->acquire().value();
    EXPECT_EQ(pool->in_use(), 2u);
    auto moved = std::move(a);
    EXPECT_EQ(pool->in_use(), 2u);
  }
  EXPECT_EQ(pool->in_use(), 0u);
}

TEST(SessionPool, RsaAndEcSignersShareOnePool) {
  auto pool = TestToken::get().open_pool(2);
  auto ec = make_signer(*pool, Algorithm::ES256);
  auto rsa = make_signer(*pool, Algorithm::RS256);
  std::atomic<int> bad{0};
  std::thread t1([&] {
    for (int i = 0; i < 50; ++i)
      if (!crypto::verify(rsa->public_key(), as_bytes("r"), rsa->sign(as_bytes("r")).value())) ++bad;
  });
  std::thread t2([&] {
    for (int i = 0; i < 200; ++i)
      if (!crypto::verify(ec->public_key(), as_bytes("e"), ec->sign(as_bytes("e")).value())) ++bad;
  });
  t1.join();
  t2.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace hsmsignd::pkcs11
