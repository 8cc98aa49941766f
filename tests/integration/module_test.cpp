// Loading the module, finding the token, reading the PIN, logging in.
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>

#include <fstream>

#include "call_stats.h"
#include "module.h"
#include "pin.h"
#include "session_pool.h"
#include "test_token.h"
#include "token.h"

namespace hsmsignd::pkcs11 {
namespace {

using hsmsignd::testing::TestToken;

std::filesystem::path write_file(const std::string& name, const std::string& content, mode_t mode) {
  auto path = TestToken::get().dir() / name;
  std::ofstream(path) << content;
  ::chmod(path.c_str(), mode);
  return path;
}

std::uint64_t calls_of(const std::string& function) { return call_stat(function).calls.load(); }

TEST(Module, RefusesARelativePath) {
  auto m = Module::load("libsofthsm2.so");
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().kind, ErrorKind::config);
  EXPECT_NE(m.error().what().find("absolute"), std::string::npos);
}

TEST(Module, RefusesAModuleOthersCanWrite) {
  const auto copy = TestToken::get().dir() / "writable.so";
  std::filesystem::copy_file(HSMSIGND_SOFTHSM2_MODULE, copy);
  for (mode_t mode : {0666, 0646, 0664}) {
    ::chmod(copy.c_str(), mode);
    auto m = Module::load(copy);
    ASSERT_FALSE(m) << std::oct << mode;
    EXPECT_NE(m.error().what().find("writable by group or others"), std::string::npos) << m.error().what();
  }
}

TEST(Module, RefusesAMissingFileNamingIt) {
  auto m = Module::load("/nonexistent/libpkcs11.so");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().what().find("/nonexistent/libpkcs11.so"), std::string::npos);
}

TEST(Module, RefusesASharedObjectThatIsNoPkcs11Module) {
  auto m = Module::load("/lib/x86_64-linux-gnu/libz.so.1");
  ASSERT_FALSE(m);
  EXPECT_NE(m.error().what().find("C_GetFunctionList"), std::string::npos) << m.error().what();
}

TEST(Token, IsFoundByLabelAndBySerial) {
  const auto& token = TestToken::get();
  EXPECT_EQ(token.info().label, TestToken::kLabel);
  EXPECT_EQ(token.info().model, "SoftHSM v2");
  auto by_serial = find_token(*token.module(), {{}, token.info().serial});
  ASSERT_TRUE(by_serial) << by_serial.error().what();
  EXPECT_EQ(by_serial->slot, token.info().slot);
}

TEST(Token, AnUnknownLabelIsNotFound) {
  auto t = find_token(*TestToken::get().module(), {"no-such-token", {}});
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().kind, ErrorKind::not_found);
  EXPECT_NE(t.error().what().find("no-such-token"), std::string::npos);
}

TEST(Token, SupportsEveryAlgorithm) {
  const auto& token = TestToken::get();
  for (auto alg : {Algorithm::ES256, Algorithm::ES384, Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA})
    EXPECT_TRUE(supports(*token.module(), token.info().slot, alg).value()) << name(alg);
}

TEST(PinFile, IsReadWithoutItsTrailingNewline) {
  auto pin = Pin::read_file(write_file("pin-ok", "1234\n", 0600));
  ASSERT_TRUE(pin) << pin.error().what();
  EXPECT_EQ(std::string(pin->bytes().begin(), pin->bytes().end()), "1234");
}

TEST(PinFile, ReadableByGroupOrOthersIsRefused) {
  for (mode_t mode : {0640, 0604, 0644, 0660}) {
    auto pin = Pin::read_file(write_file("pin-open", "1234\n", mode));
    ASSERT_FALSE(pin) << std::oct << mode;
    EXPECT_NE(pin.error().what().find("group or others"), std::string::npos);
  }
}

TEST(PinFile, EmptyOrMissingIsRefused) {
  EXPECT_FALSE(Pin::read_file(write_file("pin-empty", "\n", 0600)));
  EXPECT_FALSE(Pin::read_file(TestToken::get().dir() / "no-such-pin"));
}

TEST(PinFile, ASymlinkIsRefused) {
  auto target = write_file("pin-target", "1234\n", 0600);
  auto link = TestToken::get().dir() / "pin-link";
  std::filesystem::create_symlink(target, link);
  EXPECT_FALSE(Pin::read_file(link));
}

TEST(Login, AWrongPinIsAClearErrorAndTriedExactlyOnce) {
  const auto& token = TestToken::get();
  auto pin = Pin::read_file(write_file("pin-wrong", "not-the-pin\n", 0600)).value();
  const auto before = calls_of("C_Login");
  auto pool = SessionPool::open(token.module(), token.info(), std::move(pin), {4, std::chrono::milliseconds(100)});
  ASSERT_FALSE(pool);
  EXPECT_EQ(pool.error().function, "C_Login");
  EXPECT_EQ(pool.error().rv, CKR_PIN_INCORRECT);
  EXPECT_NE(pool.error().what().find("CKR_PIN_INCORRECT"), std::string::npos) << pool.error().what();
  EXPECT_EQ(pool.error().what().find("not-the-pin"), std::string::npos) << "the PIN must never be in a message";
  EXPECT_EQ(calls_of("C_Login") - before, 1u);
}

TEST(Login, TheRightPinOpensEverySessionLoggedIn) {
  auto pool = TestToken::get().open_pool(3);
  EXPECT_EQ(pool->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    auto lease = pool->acquire().value();
    CK_SESSION_INFO info{};
    auto* fl = static_cast<CK_FUNCTION_LIST*>(pool->module().raw_function_list());
    ASSERT_EQ(fl->C_GetSessionInfo(lease.session().handle, &info), CKR_OK);
    EXPECT_EQ(info.state, CKS_RW_USER_FUNCTIONS);
  }
}

TEST(Errors, NameTheFunctionAndTheCode) {
  Error e = Error::token("C_Sign", CKR_DEVICE_ERROR, "signing");
  EXPECT_EQ(e.what(), "C_Sign: CKR_DEVICE_ERROR (signing)");
  EXPECT_EQ(rv_name(CKR_PIN_LOCKED), "CKR_PIN_LOCKED");
  EXPECT_EQ(rv_name(0x8123), "CKR_0x8123");
  EXPECT_TRUE(Error::token("C_Login", CKR_PIN_LOCKED).pin_final());
  EXPECT_TRUE(Error::token("C_Sign", CKR_SESSION_HANDLE_INVALID).session_lost());
  EXPECT_FALSE(Error::token("C_Sign", CKR_DEVICE_ERROR).session_lost());
}

}  // namespace
}  // namespace hsmsignd::pkcs11
