"""The documents stay the truth: every configuration key the loader accepts is in docs/configuration.md
(and nothing it refuses), its example uses known keys only, and every link in the README and docs/
resolves to a file inside the project. (The API documents are checked by test_openapi.)"""
import re
import tomllib
import unittest

from harness import SOURCE_ROOT

CONFIG_SOURCES = SOURCE_ROOT / "daemon" / "config"
CONFIGURATION_MD = SOURCE_ROOT / "docs" / "configuration.md"
# The Section variable each reader calls allow_only() on, and the table it reads.
TABLE_OF_READER = {"root": "", "token": "token", "server": "server", "jwks": "jwks", "state": "state",
                   "audit": "audit", "revocation": "revocation", "verify": "verify", "keyset": "keyset",
                   "client": "client"}


def accepted_keys():
    """{table: {key, ...}} from the allow_only() lists of daemon/config/, "" being the top level."""
    tables = {}
    for source in sorted(CONFIG_SOURCES.glob("*.cpp")):
        for reader, keys in re.findall(r"(\w+)(?:->|\.)allow_only\(\{([^}]*)\}\)", source.read_text(), re.S):
            tables.setdefault(TABLE_OF_READER[reader], set()).update(re.findall(r'"(\w+)"', keys))
    return tables


def documented_keys():
    """{table: {key, ...}}: the first column of the key tables under each `## [table]` heading."""
    tables, current = {}, None
    for line in CONFIGURATION_MD.read_text().splitlines():
        if heading := re.match(r"^## \[{1,2}(\w+)\]{1,2}\s*$", line):
            current = tables.setdefault(heading.group(1), set())
        elif line.startswith("## "):
            current = None
        elif current is not None and (row := re.match(r"^\| `(\w+)` \|", line)):
            current.add(row.group(1))
    return tables


def markdown_files():
    return [SOURCE_ROOT / "README.md", *sorted((SOURCE_ROOT / "docs").rglob("*.md"))]


class ConfigurationReferenceTest(unittest.TestCase):
    def test_every_key_the_loader_accepts_is_documented_and_no_other(self):
        accepted, documented = accepted_keys(), documented_keys()
        top_level = accepted.pop("")
        self.assertEqual(set(accepted), top_level, "a reader's allow_only() was not found in daemon/config/")
        self.assertEqual(set(documented), top_level, "a table has no `## [table]` section in configuration.md")
        for table in sorted(top_level):
            with self.subTest(table=table):
                self.assertEqual(documented[table], accepted[table])

    def test_the_example_uses_known_keys_only(self):
        blocks = re.findall(r"^```toml\n(.*?)^```$", CONFIGURATION_MD.read_text(), re.M | re.S)
        self.assertTrue(blocks, "configuration.md has no example")
        accepted = accepted_keys()
        example = tomllib.loads(blocks[0])
        self.assertLessEqual(set(example), accepted[""])
        for table, value in example.items():
            for entry in value if isinstance(value, list) else [value]:
                self.assertLessEqual(set(entry), accepted[table], table)

    def test_the_reader_finds_what_it_checks(self):
        # Fails if the scrapers above silently found nothing (a renamed heading, a reformatted call).
        self.assertIn("max_rate", accepted_keys()["client"])
        self.assertIn("max_rate", documented_keys()["client"])
        self.assertIn("verify_signatures", documented_keys()["token"])


class LinksTest(unittest.TestCase):
    def test_every_relative_link_resolves_inside_the_project(self):
        broken = []
        for md in markdown_files():
            text = re.sub(r"^```.*?^```$", "", md.read_text(), flags=re.M | re.S)  # code is not a link
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                path = (md.parent / target.split("#")[0]).resolve()
                if not path.is_relative_to(SOURCE_ROOT.resolve()) or not path.exists():
                    broken.append(f"{md.relative_to(SOURCE_ROOT)}: {target}")
        self.assertEqual(broken, [])

    def test_nothing_points_outside_the_project(self):
        for md in markdown_files():
            with self.subTest(file=str(md.relative_to(SOURCE_ROOT))):
                self.assertNotRegex(md.read_text(), r"\.\./shared|shared/design")


if __name__ == "__main__":
    unittest.main()
