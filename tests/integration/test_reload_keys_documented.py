#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""agent.conf(5)'s RELOAD section lists exactly the keys the configuration's keyword
tables mark as applied on reload (common/config_keys.c, read here, not copied), so that
the page cannot drift from what SIGHUP does."""
import os
import re
import unittest

SOURCE = os.environ.get("CA_TEST_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
KEYS = os.path.join(SOURCE, "common", "config_keys.c")
MAN = os.path.join(SOURCE, "packaging", "man", "agent.conf.5")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def tables():
    """{table name: {key: applied on reload}}, from the keyword tables."""
    text = read(KEYS)
    out = {}
    for m in re.finditer(r"static const struct ca_keyword (\w+)_keys\[\] = \{(.*?)\n\};", text,
                         re.S):
        entries = re.findall(r'\{"(\w+)",\s*CA_KEY_\w+,.*?"(?:[^"\\]|\\.)*"\s*,\s*([01])\}',
                             m.group(2), re.S)
        out[m.group(1)] = {k: r == "1" for k, r in entries}
    return out


class ReloadKeysDocumented(unittest.TestCase):
    def test_reload_section_matches_the_tables(self):
        t = tables()
        self.assertTrue(t.get("agent") and t.get("connector"), t.keys())
        section = re.search(r"^\.SH RELOAD\n(.*?)^\.SH ", read(MAN), re.M | re.S)
        self.assertIsNotNone(section, "agent.conf(5) has no RELOAD section")
        named = set(re.findall(r"^\.BR? (\w+)", section.group(1), re.M))
        guardrails = {"protect", "protect_subtree", "allow_subtree", "protect_table",
                      "allow_table", "protect_key", "max_added", "max_modified", "max_deleted",
                      "max_disabled", "max_group_changes"}
        for table, keys in t.items():
            for key, reloads in keys.items():
                if table == "connector" and key in guardrails:
                    # The page says "the guardrails (GUARDRAILS, above)".
                    self.assertTrue(reloads, key)
                    continue
                if table == "resource_type":
                    continue  # "every [resource-type IDENTIFIER] section"
                if reloads:
                    self.assertIn(key, named, "[%s] %s applies on reload but agent.conf(5)'s "
                                  "RELOAD section does not say so" % (table, key))
                else:
                    self.assertNotIn(key, named, "[%s] %s waits for a restart but agent.conf(5)'s "
                                     "RELOAD section lists it" % (table, key))
        self.assertIn("the guardrails", section.group(1))
        self.assertIn("resource\\-type IDENTIFIER", section.group(1))


if __name__ == "__main__":
    unittest.main(verbosity=2)
