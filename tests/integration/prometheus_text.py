# SPDX-License-Identifier: Apache-2.0
"""A strict parser for the Prometheus text exposition format (0.0.4), for tests.

It refuses what Prometheus would refuse and what its naming conventions forbid: bad
metric or label names, bad escapes, values that are not numbers, samples before their
TYPE, a family declared twice, duplicate series, counters not named *_total, histograms
whose buckets are not cumulative or lack +Inf, _sum or _count."""
import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*$")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


class FormatError(ValueError):
    pass


def _labels(text, lineno):
    labels, i = {}, 0
    while i < len(text):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", text[i:])
        if not m:
            raise FormatError("line %d: bad label at %r" % (lineno, text[i:]))
        name, i = m.group(1), i + m.end()
        value = []
        while True:
            if i >= len(text):
                raise FormatError("line %d: unterminated label value" % lineno)
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", "\"", "n"):
                    raise FormatError("line %d: bad escape \\%s" % (lineno, nxt))
                value.append({"n": "\n"}.get(nxt, nxt))
                i += 2
            elif c == "\"":
                i += 1
                break
            elif c == "\n":
                raise FormatError("line %d: newline in label value" % lineno)
            else:
                value.append(c)
                i += 1
        if name in labels:
            raise FormatError("line %d: label %s twice" % (lineno, name))
        labels[name] = "".join(value)
        if i < len(text):
            if text[i] != ",":
                raise FormatError("line %d: expected ',' in labels" % lineno)
            i += 1
    return labels


def _value(text, lineno):
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.match(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", text):
        raise FormatError("line %d: value %r is not a number" % (lineno, text))
    return float(text)


def parse(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}}."""
    if not text.endswith("\n"):
        raise FormatError("the exposition must end with a newline")
    families, seen = {}, set()
    for lineno, line in enumerate(text.split("\n")[:-1], 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.match(name):
                    raise FormatError("line %d: bad metric name %r" % (lineno, name))
                fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
                if parts[1] == "TYPE":
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise FormatError("line %d: bad TYPE" % lineno)
                    if fam["type"] or fam["samples"]:
                        raise FormatError("line %d: TYPE of %s too late or twice" % (lineno, name))
                    fam["type"] = parts[3]
                else:
                    fam["help"] = parts[3] if len(parts) == 4 else ""
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?[0-9]+)?$", line)
        if not m:
            raise FormatError("line %d: not a sample: %r" % (lineno, line))
        name, labels = m.group(1), _labels(m.group(3) or "", lineno)
        value = _value(m.group(4), lineno)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[:-len(suffix)]
            if name.endswith(suffix) and families.get(base, {}).get("type") == "histogram":
                family = base
        if family not in families or not families[family]["type"]:
            raise FormatError("line %d: sample %s before its TYPE" % (lineno, name))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise FormatError("line %d: duplicate series %s%s" % (lineno, name, labels))
        seen.add(key)
        families[family]["samples"].append((name, labels, value))
    for name, fam in families.items():
        if fam["type"] == "counter":
            if not name.endswith("_total"):
                raise FormatError("counter %s is not named *_total" % name)
            for _, _, v in fam["samples"]:
                if v < 0 or math.isnan(v):
                    raise FormatError("counter %s has value %s" % (name, v))
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name, samples):
    series = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname == name + "_bucket":
            if "le" not in labels:
                raise FormatError("%s bucket without le" % name)
            s["buckets"].append((_value(labels["le"], 0), value))
        elif sname == name + "_sum":
            s["sum"] = value
        elif sname == name + "_count":
            s["count"] = value
    for rest, s in series.items():
        les = [le for le, _ in s["buckets"]]
        if not les or les[-1] != math.inf or les != sorted(les):
            raise FormatError("%s%s: buckets not ascending up to +Inf" % (name, rest))
        counts = [c for _, c in s["buckets"]]
        if counts != sorted(counts):
            raise FormatError("%s%s: buckets not cumulative" % (name, rest))
        if s["sum"] is None or s["count"] is None or s["count"] != counts[-1]:
            raise FormatError("%s%s: _sum/_count missing or +Inf != _count" % (name, rest))
