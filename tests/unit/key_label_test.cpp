// The CKA_LABEL that carries a key's lifecycle across restarts: what str() writes parses back, and
// labels other applications put on a shared token are left alone.
#include "keyring/key_label.h"

#include <gtest/gtest.h>

#include <string>

namespace hsmsignd::keyring {
namespace {

using std::chrono::seconds;

const KeyLabel kLabel{"default", TimePoint(seconds(1'764'400'000)), TimePoint(seconds(1'764'396'400)), false};
constexpr const char* kText = "hsmsignd/default/1764400000/1764396400";

TEST(KeyLabel, WritesKeysetActivationAndCreationInUnixSeconds) {
  EXPECT_EQ(kLabel.str(), kText);
  KeyLabel other = kLabel;
  other.created += seconds(1);
  EXPECT_NE(other.str(), kText);
}

TEST(KeyLabel, ParsesBackWhatItWrote) {
  const auto parsed = KeyLabel::parse(kLabel.str());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->keyset, "default");
  EXPECT_EQ(parsed->activates, kLabel.activates);
  EXPECT_EQ(parsed->created, kLabel.created);
  EXPECT_EQ(parsed->str(), kText);
}

TEST(KeyLabel, AnOperatorRetirementIsWrittenAsASuffixAndParsedBack) {
  KeyLabel retired = kLabel;
  retired.retired = true;
  EXPECT_EQ(retired.str(), std::string(kText) + "/retired");
  const auto parsed = KeyLabel::parse(retired.str());
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->retired);
  EXPECT_EQ(parsed->created, kLabel.created);
  EXPECT_FALSE(KeyLabel::parse(kText)->retired);
  // Only that exact suffix, once, after both times.
  for (const char* label : {"hsmsignd/default/1764400000/1764396400/Retired", "hsmsignd/default/1764400000/1764396400/retire",
                            "hsmsignd/default/1764400000/1764396400/retired/retired",
                            "hsmsignd/default/1764400000/1764396400retired", "hsmsignd/default/1764400000/retired",
                            "hsmsignd/default/1764400000/retired/1764396400"}) {
    SCOPED_TRACE(label);
    EXPECT_FALSE(KeyLabel::parse(label));
  }
}

TEST(KeyLabel, RoundTripsTheEpochAndFarFutureTimes) {
  for (const KeyLabel& label : {KeyLabel{"a", TimePoint{}, TimePoint{}, false},
                                KeyLabel{"rsa-keys_2", TimePoint(seconds(253'402'300'799)), TimePoint(seconds(1)), true}}) {
    SCOPED_TRACE(label.str());
    const auto parsed = KeyLabel::parse(label.str());
    ASSERT_TRUE(parsed);
    EXPECT_EQ(parsed->keyset, label.keyset);
    EXPECT_EQ(parsed->activates, label.activates);
    EXPECT_EQ(parsed->created, label.created);
    EXPECT_EQ(parsed->retired, label.retired);
  }
}

TEST(KeyLabel, RefusesLabelsWithAnotherPrefix) {
  for (const char* label : {"other/default/1764400000/1764396400", "HSMSIGND/default/1764400000/1764396400",
                            "hsmsignd-default/1764400000/1764396400", "xhsmsignd/default/1764400000/1764396400",
                            "hsmsignd", "", "audit-key"}) {
    SCOPED_TRACE(label);
    EXPECT_FALSE(KeyLabel::parse(label));
  }
}

TEST(KeyLabel, RefusesMissingParts) {
  for (const char* label : {"hsmsignd/", "hsmsignd/default", "hsmsignd/default/", "hsmsignd/default/1764400000",
                            "hsmsignd/default/1764400000/", "hsmsignd/default//1764396400", "hsmsignd/default//"}) {
    SCOPED_TRACE(label);
    EXPECT_FALSE(KeyLabel::parse(label));
  }
}

TEST(KeyLabel, RefusesAnEmptyKeyset) {
  EXPECT_FALSE(KeyLabel::parse("hsmsignd//1764400000/1764396400"));
  EXPECT_TRUE(KeyLabel::parse("hsmsignd/x/1764400000/1764396400"));  // one character is enough
}

TEST(KeyLabel, RefusesTimesThatAreNotDigits) {
  for (const char* label : {"hsmsignd/default/abc/1764396400", "hsmsignd/default/1764400000/abc",
                            "hsmsignd/default/17644e5/1764396400", "hsmsignd/default/0x1F/1764396400",
                            "hsmsignd/default/1.5/1764396400", "hsmsignd/default/+1764400000/1764396400",
                            "hsmsignd/default/ 1764400000/1764396400", "hsmsignd/default/1764400000/1764396400 "}) {
    SCOPED_TRACE(label);
    EXPECT_FALSE(KeyLabel::parse(label));
  }
}

TEST(KeyLabel, RefusesNegativeTimes) {
  EXPECT_FALSE(KeyLabel::parse("hsmsignd/default/-1/1764396400"));
  EXPECT_FALSE(KeyLabel::parse("hsmsignd/default/1764400000/-1764396400"));
  EXPECT_TRUE(KeyLabel::parse("hsmsignd/default/0/0"));
}

TEST(KeyLabel, RefusesTimesTooLargeForSeconds) {
  EXPECT_FALSE(KeyLabel::parse("hsmsignd/default/99999999999999999999/1764396400"));
  EXPECT_FALSE(KeyLabel::parse("hsmsignd/default/1764400000/99999999999999999999"));
}

TEST(KeyLabel, RefusesTrailingJunk) {
  for (const char* label : {"hsmsignd/default/1764400000/1764396400/", "hsmsignd/default/1764400000/1764396400/7",
                            "hsmsignd/default/1764400000/1764396400x", "hsmsignd/default/1764400000x/1764396400",
                            "hsmsignd/a/b/1764400000/1764396400"}) {
    SCOPED_TRACE(label);
    EXPECT_FALSE(KeyLabel::parse(label));
  }
}

TEST(KeyLabel, RefusesALabelWithAnEmbeddedNul) {
  const std::string label = std::string("hsmsignd/default/1764400000/1764396400") + '\0' + "7";
  EXPECT_FALSE(KeyLabel::parse(label));
}

}  // namespace
}  // namespace hsmsignd::keyring
