// The fault shim, driven through the project's own PKCS#11 layer. The shim is the only module this
// process loads: loading SoftHSM beside it (TestToken::get() does) would share one SoftHSM instance, and
// one C_Initialize, between the two.
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>  // test helper: raw calls the pkcs11 layer does not offer (C_GetSlotInfo, ...)
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <future>
#include <thread>

#include "call_stats.h"
#include "control.h"
#include "crypto/verify.h"
#include "keys.h"
#include "sign.h"
#include "test_token.h"
#include "token.h"

namespace hsmsignd::fault {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using hsmsignd::testing::random_id;
using namespace hsmsignd::pkcs11;

constexpr const char* kLabel = "hsmsignd-fault";
constexpr const char* kPin = "fault-only-pin-0815";  // a throw-away token's PIN, nothing else
const std::string kMessage = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJmYXVsdCJ9";

// This process's token, its control file and its stats file, in one temporary folder.
class ShimToken {
 public:
  static ShimToken& get() {
    static ShimToken token;
    return token;
  }
  fs::path control() const { return dir_ / "control"; }
  fs::path stats() const { return dir_ / "stats"; }
  fs::path pin_file() const { return dir_ / "pin"; }
  ~ShimToken() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

 private:
  ShimToken() : dir_(hsmsignd::testing::make_token_dir("hsmsignd-fault", kLabel, kPin)) {
    ::setenv("HSMSIGND_FAULT_MODULE", HSMSIGND_SOFTHSM2_MODULE, 1);
    ::setenv("HSMSIGND_FAULT_CONTROL", control().c_str(), 1);
    ::setenv("HSMSIGND_FAULT_STATS", stats().c_str(), 1);
  }
  fs::path dir_;
};

// As the tests are told to: a new file renamed over the old one.
void write_control(const std::string& text) {
  const auto path = ShimToken::get().control();
  const auto tmp = fs::path(path.string() + ".tmp");
  std::ofstream(tmp) << text;
  fs::rename(tmp, path);
}

// "fail injected 2" → 2, from the shim's stats file.
unsigned long injected(const std::string& kind) {
  std::ifstream in(ShimToken::get().stats());
  std::string name, word;
  unsigned long n = 0;
  while (in >> name >> word >> n)
    if (name == kind) return n;
  return 0;
}

class FaultShim : public ::testing::Test {
 protected:
  void SetUp() override {
    write_control("");
    load();
    id_ = random_id();
    {
      auto lease = pool_->acquire().value();
      generate_key_pair(lease.session(), {Algorithm::ES256, 2048, id_, "fault-test"}).value();
    }
    signer_ = Signer::open(*pool_, id_, Algorithm::ES256).value();
  }
  void TearDown() override {
    write_control("");
    unload();
  }

  void load() {
    module_ = Module::load(HSMSIGND_FAULT_SHIM).value();
    token_ = find_token(*module_, {kLabel, {}}).value();
    pool_ = SessionPool::open(module_, token_, Pin::read_file(ShimToken::get().pin_file()).value(), {2, 2000ms})
                .value();
  }
  void unload() {
    signer_.reset();
    pool_.reset();
    module_.reset();
  }

  CK_FUNCTION_LIST& raw() const { return *static_cast<CK_FUNCTION_LIST*>(module_->raw_function_list()); }
  Result<Bytes> sign() const { return signer_->sign(as_bytes(kMessage)); }
  bool verifies(const Bytes& signature) const {
    return crypto::verify(signer_->public_key(), as_bytes(kMessage), signature);
  }

  std::shared_ptr<Module> module_;
  TokenInfo token_;
  std::unique_ptr<SessionPool> pool_;
  Bytes id_;
  std::shared_ptr<Signer> signer_;
};

::testing::AssertionResult failed_with(const Result<Bytes>& result, const char* function, CK_RV rv) {
  if (result) return ::testing::AssertionFailure() << "it succeeded";
  const auto& e = result.error();
  if (e.kind == ErrorKind::token && e.function == function && e.rv == rv) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << e.what();
}

TEST(ControlFormat, ReadsEveryDirective) {
  std::vector<std::string> complaints;
  const auto c = parse_control(
      "# a comment\n\n"
      "fail C_Sign CKR_DEVICE_ERROR 2\n"
      "fail * 0x80000001   # vendor-defined\n"
      "latency 25\n"
      "latency 100 C_Login\n"
      "corrupt C_Sign 1\n"
      "hang C_OpenSession\n"
      "removed\n",
      complaints);
  EXPECT_TRUE(complaints.empty()) << complaints.front();
  ASSERT_EQ(c.rules.size(), 6u);
  EXPECT_TRUE(c.removed);
  EXPECT_EQ(c.rules[0].action, Action::fail);
  EXPECT_EQ(c.rules[0].function, Fn::C_Sign);
  EXPECT_EQ(c.rules[0].rv, CKR_DEVICE_ERROR);
  EXPECT_EQ(c.rules[0].remaining, 2UL);
  EXPECT_FALSE(c.rules[1].function);
  EXPECT_EQ(c.rules[1].rv, 0x80000001UL);
  EXPECT_FALSE(c.rules[1].remaining);
  EXPECT_EQ(c.rules[2].delay, 25ms);
  EXPECT_FALSE(c.rules[2].function);
  EXPECT_EQ(c.rules[3].function, Fn::C_Login);
  EXPECT_EQ(c.rules[4].action, Action::corrupt);
  EXPECT_EQ(c.rules[5].action, Action::hang);
}

TEST(ControlFormat, StarLeavesTheLifecycleFunctionsAlone) {
  const Rule every{Action::fail, std::nullopt, CKR_DEVICE_ERROR, {}, {}};
  EXPECT_TRUE(every.matches(Fn::C_Sign));
  EXPECT_TRUE(every.matches(Fn::C_GetSlotList));
  for (Fn fn : {Fn::C_Initialize, Fn::C_Finalize, Fn::C_GetInfo}) EXPECT_FALSE(every.matches(fn));
}

TEST(ControlFormat, NamesEveryBadLineAndKeepsTheGoodOnes) {
  std::vector<std::string> complaints;
  const auto c = parse_control(
      "fial C_Sign CKR_DEVICE_ERROR\n"
      "fail C_Sing CKR_DEVICE_ERROR\n"
      "fail C_Sign CKR_NO_SUCH_THING\n"
      "fail C_Sign CKR_DEVICE_ERROR lots\n"
      "corrupt C_Verify\n"
      "removed now\n"
      "fail C_Sign CKR_DEVICE_ERROR\n",
      complaints);
  ASSERT_EQ(complaints.size(), 6u);
  EXPECT_EQ(complaints[0], "line 1: unknown directive \"fial\", ignored");
  EXPECT_NE(complaints[1].find("unknown function \"C_Sing\""), std::string::npos) << complaints[1];
  EXPECT_NE(complaints[2].find("CKR_NO_SUCH_THING"), std::string::npos) << complaints[2];
  EXPECT_FALSE(c.removed);
  ASSERT_EQ(c.rules.size(), 1u);
}

TEST_F(FaultShim, PassesEverythingThroughWithoutAControlFile) {
  fs::remove(ShimToken::get().control());
  auto signature = sign();
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
  CK_INFO info{};
  ASSERT_EQ(raw().C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(info.manufacturerID), 12), "SoftHSM     ");
}

TEST_F(FaultShim, FailWithACountFailsExactlyThatManyCalls) {
  const auto errors_before = call_stat("C_Sign").errors.load();
  const auto injected_before = injected("fail");
  write_control("fail C_Sign CKR_DEVICE_ERROR 2\n");
  EXPECT_TRUE(failed_with(sign(), "C_Sign", CKR_DEVICE_ERROR));
  EXPECT_TRUE(failed_with(sign(), "C_Sign", CKR_DEVICE_ERROR));
  for (int i = 0; i < 3; ++i) {
    auto signature = sign();
    ASSERT_TRUE(signature) << signature.error().what();
    EXPECT_TRUE(verifies(*signature));
  }
  EXPECT_EQ(call_stat("C_Sign").errors.load() - errors_before, 2u);
  EXPECT_EQ(injected("fail") - injected_before, 2u);
}

TEST_F(FaultShim, ANewVersionOfTheFileStartsTheCountAgain) {
  write_control("fail C_Sign CKR_DEVICE_ERROR 1\n");
  EXPECT_TRUE(failed_with(sign(), "C_Sign", CKR_DEVICE_ERROR));
  EXPECT_TRUE(sign());
  write_control("fail C_Sign CKR_DEVICE_MEMORY 1\n");
  EXPECT_TRUE(failed_with(sign(), "C_Sign", CKR_DEVICE_MEMORY));
  EXPECT_TRUE(sign());
}

TEST_F(FaultShim, FailWithoutACountFailsUntilTheLineIsGone) {
  write_control("fail C_SignInit 0x80000123\n");
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(failed_with(sign(), "C_SignInit", 0x80000123UL));
  write_control("");
  EXPECT_TRUE(sign());
}

TEST_F(FaultShim, FailStarFailsEveryCallButTheLifecycleOnes) {
  write_control("fail * CKR_GENERAL_ERROR\n");
  EXPECT_TRUE(failed_with(sign(), "C_SignInit", CKR_GENERAL_ERROR));
  auto found = find_token(*module_, {kLabel, {}});
  ASSERT_FALSE(found);
  EXPECT_EQ(found.error().function, "C_GetSlotList");
  CK_INFO info{};
  EXPECT_EQ(raw().C_GetInfo(&info), CKR_OK);
}

TEST_F(FaultShim, CorruptSpoilsTheNextSignaturesOnly) {
  const auto before = injected("corrupt");
  write_control("corrupt C_Sign 1\n");
  auto bad = sign();
  ASSERT_TRUE(bad) << bad.error().what();
  EXPECT_EQ(bad->size(), 64u);
  EXPECT_FALSE(verifies(*bad));
  auto good = sign();
  ASSERT_TRUE(good) << good.error().what();
  EXPECT_TRUE(verifies(*good));
  EXPECT_EQ(injected("corrupt") - before, 1u);
}

TEST_F(FaultShim, ACountHoldsWhenManyThreadsSignAtOnce) {
  write_control("corrupt C_Sign 5\n");
  std::atomic<int> bad{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        auto signature = sign();
        if (!signature) ++failed;
        else if (!verifies(*signature)) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(bad.load(), 5);
}

TEST_F(FaultShim, LatencyDelaysTheNamedFunctionOnly) {
  write_control("latency 200 C_Sign\n");
  auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(sign());
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);

  write_control("latency 3000 C_Verify\n");
  start = std::chrono::steady_clock::now();
  EXPECT_TRUE(sign());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2000ms);
}

TEST_F(FaultShim, LatencyWithoutAFunctionDelaysEveryCall) {
  write_control("latency 100\n");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(find_token(*module_, {kLabel, {}}));
  // C_GetSlotList twice, then C_GetTokenInfo for each slot.
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
}

TEST_F(FaultShim, HangBlocksUntilTheLineIsGone) {
  write_control("hang C_Sign\n");
  auto pending = std::async(std::launch::async, [&] { return sign(); });
  EXPECT_EQ(pending.wait_for(300ms), std::future_status::timeout);
  write_control("");
  ASSERT_EQ(pending.wait_for(5s), std::future_status::ready);
  auto signature = pending.get();
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
}

TEST_F(FaultShim, AnUnknownDirectiveIsReportedAndTheRestStillApplies) {
  ::testing::internal::CaptureStderr();
  write_control("frobnicate C_Sign\nfail C_Sign CKR_DEVICE_ERROR 1\n");
  const auto result = sign();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("line 1: unknown directive \"frobnicate\", ignored"), std::string::npos) << err;
  EXPECT_TRUE(failed_with(result, "C_Sign", CKR_DEVICE_ERROR));
}

// These tests keep the session pool out of the way once the token is out: the pool re-initialises the
// module by itself when it meets a lost token, and what is tested here is the shim, not the pool.

// A session handle of the pool's, leased and returned: still open on the real token.
SessionHandle some_session(SessionPool& pool) { return pool.acquire().value().session().handle; }

// What a pulled-out token looks like through every kind of call.
void expect_token_gone(const Module& module, SlotId slot, SessionHandle session, ByteView key_id) {
  auto& raw = *static_cast<CK_FUNCTION_LIST*>(module.raw_function_list());
  EXPECT_EQ(find_token(module, {kLabel, {}}).error().kind, ErrorKind::not_found);
  auto supported = supports(module, slot, Algorithm::ES256);
  ASSERT_FALSE(supported);
  EXPECT_EQ(supported.error().rv, CKR_TOKEN_NOT_PRESENT) << supported.error().what();
  auto found = find_key({&module, session}, key_id);
  ASSERT_FALSE(found);
  EXPECT_TRUE(found.error().token_gone()) << found.error().what();
  EXPECT_EQ(found.error().rv, CKR_DEVICE_REMOVED) << found.error().what();

  CK_ULONG count = 99;
  EXPECT_EQ(raw.C_GetSlotList(CK_TRUE, nullptr, &count), CKR_OK);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(raw.C_GetSlotList(CK_FALSE, nullptr, &count), CKR_OK);
  EXPECT_GE(count, 1u);
  CK_SLOT_INFO slot_info{};
  EXPECT_EQ(raw.C_GetSlotInfo(slot, &slot_info), CKR_OK);
  EXPECT_EQ(slot_info.flags & CKF_TOKEN_PRESENT, 0u);
  CK_TOKEN_INFO token_info{};
  EXPECT_EQ(raw.C_GetTokenInfo(slot, &token_info), CKR_TOKEN_NOT_PRESENT);
  CK_SESSION_HANDLE opened = 0;
  EXPECT_EQ(raw.C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &opened), CKR_TOKEN_NOT_PRESENT);
  CK_SESSION_INFO session_info{};
  EXPECT_EQ(raw.C_GetSessionInfo(session, &session_info), CKR_DEVICE_REMOVED);
  CK_INFO info{};
  EXPECT_EQ(raw.C_GetInfo(&info), CKR_OK);
}

CK_RV reinitialise(const Module& module) {
  auto& raw = *static_cast<CK_FUNCTION_LIST*>(module.raw_function_list());
  if (const CK_RV rv = raw.C_Finalize(nullptr); rv != CKR_OK) return rv;
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  return raw.C_Initialize(&args);
}

TEST_F(FaultShim, ARemovedTokenFailsEveryCallThatNeedsIt) {
  const SessionHandle session = some_session(*pool_);
  write_control("removed\n");
  expect_token_gone(*module_, token_.slot, session, id_);
  auto signature = sign();
  ASSERT_FALSE(signature);
  EXPECT_TRUE(signature.error().token_gone()) << signature.error().what();
}

TEST_F(FaultShim, ARemovedTokenStaysGoneUntilTheModuleIsInitialisedAgain) {
  const SessionHandle session = some_session(*pool_);
  write_control("removed\n");
  signer_.reset();
  pool_.reset();  // its C_CloseSession calls fail; C_Finalize closes the sessions below
  expect_token_gone(*module_, token_.slot, session, id_);

  // The device is back, but the library has not been initialised again.
  write_control("");
  expect_token_gone(*module_, token_.slot, session, id_);

  // Initialised again while the device is still out.
  write_control("removed\n");
  ASSERT_EQ(reinitialise(*module_), CKR_OK);
  write_control("");
  expect_token_gone(*module_, token_.slot, session, id_);

  // Initialised again with the device back: the token and its key are there again.
  ASSERT_EQ(reinitialise(*module_), CKR_OK);
  token_ = find_token(*module_, {kLabel, {}}).value();
  pool_ = SessionPool::open(module_, token_, Pin::read_file(ShimToken::get().pin_file()).value(), {2, 2000ms})
              .value();
  signer_ = Signer::open(*pool_, id_, Algorithm::ES256).value();
  auto signature = sign();
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
}

TEST_F(FaultShim, LoadingTheModuleAgainBringsBackARemovedTokenWithItsKeys) {
  write_control("removed\n");
  EXPECT_EQ(find_token(*module_, {kLabel, {}}).error().kind, ErrorKind::not_found);
  write_control("");
  EXPECT_EQ(find_token(*module_, {kLabel, {}}).error().kind, ErrorKind::not_found);

  unload();  // C_Finalize
  load();    // C_Initialize, the token found again, a new session pool logged in
  signer_ = Signer::open(*pool_, id_, Algorithm::ES256).value();
  auto signature = sign();
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
}

// The session pool's own recovery (pkcs11/session_pool), on the shim: the pool re-initialises the module
// by itself, finds the token again and makes the signer find its key again.

// Signs until it works, at most `within`; the pool retries a lost token only every so often.
Result<Bytes> sign_within(const std::function<Result<Bytes>()>& sign, std::chrono::milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  auto result = sign();
  while (!result && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    result = sign();
  }
  return result;
}

TEST_F(FaultShim, ThePoolReinitialisesTheModuleWhenARemovedTokenComesBack) {
  ASSERT_TRUE(sign());
  const auto generation = pool_->generation();
  write_control("removed\n");
  EXPECT_TRUE(sign().error().token_gone());
  EXPECT_TRUE(pool_->token_lost());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(sign());  // fails fast, and never with a crash
  write_control("");
  auto signature = sign_within([&] { return sign(); }, 3000ms);
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
  EXPECT_FALSE(pool_->token_lost());
  EXPECT_GT(pool_->generation(), generation);  // the signer's cached handle was dropped and found again
  EXPECT_GE(pool_->recoveries(), 1u);
}

TEST_F(FaultShim, ThePoolTreatsATokenThatKeepsFailingAsGoneButOneErrorAsOne) {
  write_control("fail C_Sign CKR_DEVICE_ERROR 2\n");
  EXPECT_FALSE(sign());
  EXPECT_FALSE(sign());
  EXPECT_FALSE(pool_->token_lost());  // two in a row: still just errors
  ASSERT_TRUE(sign());
  write_control("fail C_Sign CKR_DEVICE_ERROR 3\n");
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(sign());
  EXPECT_TRUE(pool_->token_lost());
  auto signature = sign_within([&] { return sign(); }, 3000ms);
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_EQ(pool_->recoveries(), 1u);
}

TEST_F(FaultShim, ARecoveryWaitsForEveryLeaseAndHandsOutNoneMeanwhile) {
  auto held = pool_->acquire();
  ASSERT_TRUE(held);
  write_control("removed\n");
  EXPECT_FALSE(sign());
  ASSERT_TRUE(pool_->token_lost());
  write_control("");
  // One session is still leased: the recovery can't finalize under it, and says so without blocking
  // longer than a lease wait.
  const auto started = std::chrono::steady_clock::now();
  auto refused = sign();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().kind, ErrorKind::busy) << refused.error().what();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms);
  { auto returned = std::move(*held); }
  auto signature = sign_within([&] { return sign(); }, 3000ms);
  ASSERT_TRUE(signature) << signature.error().what();
  EXPECT_TRUE(verifies(*signature));
}

}  // namespace
}  // namespace hsmsignd::fault
