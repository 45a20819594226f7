#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Every key the ldap and sql back-ends accept is documented, in agent.conf(5) and in
packaging/doc/backends.md, and every key those documents' back-end tables list is one
the back-end accepts: the key tables of the code are read, not a copy of them."""
import os
import re
import unittest

SOURCE = os.environ.get("CA_TEST_SOURCE_DIR",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
LDAP = os.path.join(SOURCE, "agent", "backends", "ldap", "ldap_backend.c")
SQL_DIR = os.path.join(SOURCE, "agent", "backends", "sql")
MAN = os.path.join(SOURCE, "packaging", "man", "agent.conf.5")
BACKENDS_MD = os.path.join(SOURCE, "packaging", "doc", "backends.md")
# The agent's own keys, present in every section and documented with the agent's.
AGENT_KEYS = {"backend", "poll_interval", "max_parallel", "max_in_flight", "connector"}


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def key_table(text, name):
    """The strings of `static const char *const NAME[] = {...};`, the agent's own left out."""
    m = re.search(r"static const char \*const %s\[\] = \{(.*?)\n\};" % name, text, re.S)
    if not m:
        raise AssertionError("no key table %s" % name)
    return [k for k in re.findall(r'"(\w+)"', m.group(1)) if k not in AGENT_KEYS]


def sql_connector_keys():
    """The sql back-end has no connector key table: the keys its instance and drivers read
    (sql_order.c reads the mapping)."""
    keys = set()
    for name in sorted(os.listdir(SQL_DIR)):
        if not name.endswith(".c") or name in ("sql_order.c", "sql_password.c"):
            continue
        text = read(os.path.join(SQL_DIR, name))
        keys.update(re.findall(r'->setting(?:_ms)?\(s, "(\w+)"', text))
        for secret in re.findall(r'->secret\(s, "(\w+)"', text):
            keys.update((secret + "_file", secret + "_credential"))
    return keys


def man_text():
    return read(MAN).replace("\\-", "-").replace("\\&", "")


def section(text, start, end):
    """The text from the heading start up to the heading end."""
    i = text.index(start)
    return text[i:text.index(end, i + len(start))]


def documented_table_keys(md_section):
    """Keys in the first column of the section's tables: "| `key` |" or "| `a`, `b` |"."""
    keys = set()
    for cell in re.findall(r"^\| ([^|]+) \|", md_section, re.M):
        keys.update(re.findall(r"`(\w+)`", cell))
    return keys


class BackendKeysDocumented(unittest.TestCase):
    def setUp(self):
        ldap_c = read(LDAP)
        sql_order_c = read(os.path.join(SQL_DIR, "sql_order.c"))
        self.ldap_connector = key_table(ldap_c, "connector_keys")
        self.ldap_mapping = key_table(ldap_c, "mapping_keys")
        self.sql_connector = sorted(sql_connector_keys())
        self.sql_mapping = key_table(sql_order_c, "mapping_keys")
        md = read(BACKENDS_MD)
        self.md_ldap = section(md, "## ldap:", "\n## ")
        self.md_sql = section(md, "## sql:", "\n## ")
        man = man_text()
        self.man_connector = section(man, '.SH "[connector NAME] SECTIONS"', "\n.SH ")
        self.man_mapping = section(man, '.SH "[resource-type IDENTIFIER] SECTIONS"', "\n.SH ")

    def test_tables_were_read(self):
        # A regular expression that stops matching must not pass everything.
        self.assertGreaterEqual(len(self.ldap_connector), 11, self.ldap_connector)
        self.assertGreaterEqual(len(self.ldap_mapping), 15, self.ldap_mapping)
        self.assertGreaterEqual(len(self.sql_connector), 7, self.sql_connector)
        self.assertGreaterEqual(len(self.sql_mapping), 15, self.sql_mapping)
        for key in ("enabled_attribute", "disabled_value", "move_change", "key_attribute"):
            self.assertIn(key, self.ldap_mapping)
        for key in ("password_hash", "enabled_values"):
            self.assertIn(key, self.sql_mapping)

    def check(self, keys, text, where):
        missing = [k for k in keys if not re.search(r"(?<![\w-])%s(?![\w-])" % k, text)]
        self.assertEqual(missing, [], "%s lacks %s" % (where, ", ".join(missing)))

    def test_man_page(self):
        self.check(self.ldap_connector + self.sql_connector, self.man_connector,
                   "agent.conf(5) [connector NAME]")
        self.check(self.ldap_mapping + self.sql_mapping, self.man_mapping,
                   "agent.conf(5) [resource-type IDENTIFIER]")

    def test_backends_md(self):
        self.check(self.ldap_connector + self.ldap_mapping, self.md_ldap, "backends.md, ldap")
        self.check(self.sql_connector + self.sql_mapping, self.md_sql, "backends.md, sql")

    def test_documented_keys_exist(self):
        """A key in backends.md's ldap tables that the back-end refuses is a wrong document."""
        accepted = set(self.ldap_connector) | set(self.ldap_mapping) | {"order_timeout"}
        documented = documented_table_keys(self.md_ldap)
        self.assertGreaterEqual(len(documented), 20)
        self.assertEqual(sorted(documented - accepted), [],
                         "backends.md documents keys the ldap back-end refuses")
        accepted = set(self.sql_mapping)
        documented = documented_table_keys(self.md_sql)
        self.assertGreaterEqual(len(documented), 12)
        self.assertEqual(sorted(documented - accepted), [],
                         "backends.md documents keys the sql back-end refuses")


if __name__ == "__main__":
    unittest.main()
