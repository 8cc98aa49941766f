// The Token Status List's encoding (the draft's own example) and this host's lists: indices never handed
// out twice across a reopening, bits kept only for this host's lists, lists retired once expired.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <functional>
#include <vector>

#include "jose/base64url.h"
#include "status_list/encoding.h"
#include "status_list/status_lists.h"
#include "test_support.h"

namespace hsmsignd::status_list {
namespace {

TEST(StatusListEncoding, MatchesTheDraftsExample) {
  // draft-ietf-oauth-status-list §4.1: 16 tokens, those at these indices revoked, bits = 1.
  std::vector<std::uint8_t> bytes(2, 0);
  for (std::uint64_t i : {0, 3, 4, 5, 7, 8, 9, 13, 15}) set_bit(bytes, i);
  EXPECT_EQ(bytes, (std::vector<std::uint8_t>{0xb9, 0xa3}));
  EXPECT_EQ(encode_list(bytes), "eNrbuRgAAhcBXQ");
}

TEST(StatusListEncoding, ALargeListRoundTripsThroughZlib) {
  std::vector<std::uint8_t> bytes(125000, 0);  // a million tokens
  for (std::uint64_t i = 0; i < 1000000; i += 997) set_bit(bytes, i);
  auto compressed = jose::base64url_decode(encode_list(bytes));
  ASSERT_TRUE(compressed);
  std::vector<std::uint8_t> back(bytes.size() + 1);
  uLongf size = back.size();
  ASSERT_EQ(uncompress(back.data(), &size, compressed->data(), compressed->size()), Z_OK);
  back.resize(size);
  EXPECT_EQ(back, bytes);
}

// The lists' file in a fresh folder.
class TempDir : public test::TempDir {
 public:
  std::filesystem::path file() const { return path() / "status-lists.sqlite3"; }
};

constexpr std::int64_t kWindow = 3600, kLifetime = 910, kNow = 1796187600 + 100;
const std::string kBase = "https://issuer.example/statuslists";

TEST(StatusLists, IndicesAreNeverHandedOutTwiceAcrossAReopening) {
  TempDir dir;
  std::int64_t last = -1;
  {
    StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
    for (int i = 0; i < 3; ++i) {
      auto slot = lists.allocate("default", kNow);
      ASSERT_TRUE(slot);
      EXPECT_EQ(slot->uri, kBase + "/default/1796187600-" + lists.host());
      EXPECT_EQ(slot->idx, last + 1);
      last = slot->idx;
    }
  }  // as a kill -9 would: nothing is written at close
  StatusLists again(dir.file(), kBase, kWindow, kLifetime, kNow);
  auto slot = again.allocate("default", kNow);
  ASSERT_TRUE(slot);
  EXPECT_EQ(slot->uri, kBase + "/default/1796187600-" + again.host());  // the host keeps its id
  EXPECT_GT(slot->idx, last);
  EXPECT_EQ(slot->idx, StatusLists::kBlock);
  // Every reserved index is covered by the list, so a verifier always finds a token's bit.
  auto snapshot = again.find("default/1796187600-" + again.host());
  ASSERT_TRUE(snapshot);
  EXPECT_GE(snapshot->bytes.size() * 8, static_cast<std::size_t>(slot->idx + 1));
}

TEST(StatusLists, OnlyThisHostsListsAreMarked) {
  TempDir dir;
  StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
  auto slot = lists.allocate("default", kNow);
  ASSERT_TRUE(slot);
  const std::string id = "default/1796187600-" + lists.host();
  const auto before = lists.version(id);
  lists.mark("https://other.example/statuslists/" + id, slot->idx);
  lists.mark(kBase + "x/" + id, slot->idx);
  lists.mark(kBase + "/default/1796187600-0000000z", slot->idx);  // another host under the same base
  lists.mark(kBase + "/" + id, StatusLists::kBlock * 10);         // beyond what was ever handed out
  EXPECT_EQ(lists.version(id), before);
  lists.mark(slot->uri, slot->idx);
  EXPECT_NE(lists.version(id), before);
  EXPECT_EQ(lists.find(id)->bytes[0], 1);
}

TEST(StatusLists, AListIsRetiredOnceEveryTokenItIndexesHasExpired) {
  TempDir dir;
  StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
  ASSERT_TRUE(lists.allocate("default", kNow));
  const std::int64_t window_end = 1796187600 + kWindow;
  const std::string id = "default/1796187600-" + lists.host();
  lists.retire(window_end + kLifetime);
  EXPECT_TRUE(lists.find(id));
  lists.retire(window_end + kLifetime + 1);
  EXPECT_FALSE(lists.find(id));
  StatusLists again(dir.file(), kBase, kWindow, kLifetime, window_end + kLifetime + 1);
  EXPECT_EQ(again.lists(), 0u);
}

TEST(StatusLists, AShorterWindowOrLifetimeAfterARestartDoesNotRetireAListEarly) {
  TempDir dir;
  { ASSERT_TRUE(StatusLists(dir.file(), kBase, kWindow, kLifetime, kNow).allocate("default", kNow)); }
  const std::int64_t due = 1796187600 + kWindow + kLifetime;
  StatusLists shorter(dir.file(), kBase, 60, 10, kNow);
  const std::string id = "default/1796187600-" + shorter.host();
  shorter.retire(due);
  EXPECT_TRUE(shorter.find(id));
  shorter.retire(due + 1);
  EXPECT_FALSE(shorter.find(id));
}

TEST(StatusLists, TwoHostsUnderOneBaseNameDifferentLists) {
  TempDir a, b;
  StatusLists first(a.file(), kBase, kWindow, kLifetime, kNow), second(b.file(), kBase, kWindow, kLifetime, kNow);
  EXPECT_NE(first.host(), second.host());
  auto slot = first.allocate("default", kNow);
  ASSERT_TRUE(second.allocate("default", kNow));
  second.mark(slot->uri, slot->idx);  // a revocation of the first host's token, learned by the second
  EXPECT_EQ(second.find("default/1796187600-" + second.host())->bytes[0], 0);
}

TEST(StatusLists, TheNextBlockIsReservedInTheBackgroundBeforeItIsNeeded) {
  TempDir dir;
  StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
  std::vector<std::function<void()>> posted;
  lists.set_background([&](std::function<void()> task) { posted.push_back(std::move(task)); });
  const std::string id = "default/1796187600-" + lists.host();
  for (std::int64_t i = 0; i <= StatusLists::kBlock / 2; ++i) ASSERT_TRUE(lists.allocate("default", kNow));
  ASSERT_EQ(posted.size(), 1u);  // once, however many tokens are issued while it is on its way
  EXPECT_EQ(lists.find(id)->bytes.size() * 8, static_cast<std::size_t>(StatusLists::kBlock));
  posted.front()();
  EXPECT_EQ(lists.find(id)->bytes.size() * 8, static_cast<std::size_t>(2 * StatusLists::kBlock));
  // Durable: a reopening goes on after both blocks.
  StatusLists again(dir.file(), kBase, kWindow, kLifetime, kNow);
  EXPECT_EQ(again.allocate("default", kNow)->idx, 2 * StatusLists::kBlock);
}

TEST(StatusLists, TheNextWindowsListIsReservedAheadOfItsStart) {
  TempDir dir;
  StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
  const std::int64_t next = 1796187600 + kWindow;
  lists.prepare_windows({"default"}, next - 200, 120);
  EXPECT_FALSE(lists.find("default/" + std::to_string(next) + "-" + lists.host()));
  lists.prepare_windows({"default"}, next - 100, 120);
  auto ahead = lists.find("default/" + std::to_string(next) + "-" + lists.host());
  ASSERT_TRUE(ahead);
  EXPECT_EQ(ahead->bytes.size() * 8, static_cast<std::size_t>(StatusLists::kBlock));
}

TEST(StatusLists, EachWindowAndKeysetHasItsOwnList) {
  TempDir dir;
  StatusLists lists(dir.file(), kBase, kWindow, kLifetime, kNow);
  EXPECT_EQ(lists.allocate("default", kNow)->uri, kBase + "/default/1796187600-" + lists.host());
  EXPECT_EQ(lists.allocate("rsa", kNow)->uri, kBase + "/rsa/1796187600-" + lists.host());
  auto next = lists.allocate("default", kNow + kWindow);
  EXPECT_EQ(next->uri, kBase + "/default/1796191200-" + lists.host());
  EXPECT_EQ(next->idx, 0);
}

}  // namespace
}  // namespace hsmsignd::status_list
