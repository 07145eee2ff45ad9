"""A strict parser for the Prometheus text exposition format 0.0.4
(https://prometheus.io/docs/instrumenting/exposition_formats/), stricter than
Prometheus itself where the format leaves room: fedproxy's output must be
clean, not merely accepted.

    families = parse(text)            # raises PromFormatError on any problem
    families["fedproxy_reloads_total"].samples -> [Sample(name, labels, value)]

Checked: line grammar (names, label names, escaped label values, float
values, optional integer timestamp), one HELP and one TYPE per family, TYPE
before the family's first sample, samples of a family contiguous, no
duplicate series, the suffixes each type allows (counter: name ends in
_total; histogram: _bucket with le / _sum / _count, buckets cumulative with
increasing le, +Inf bucket == _count, _sum written as an exact decimal —
no exponent, at most 9 fractional digits, as fedproxy renders its integer
nanoseconds), no blank lines, final newline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
EXACT_DECIMAL = re.compile(r"\d+(\.\d{1,9})?")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class PromFormatError(ValueError):
    pass


@dataclass
class Sample:
    name: str
    labels: dict
    value: float
    raw: str = ""  # the value as written


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    samples: list = field(default_factory=list)

    def value(self, name: str | None = None, **labels) -> float | None:
        """Sum of the samples called `name` (default: the family name) whose
        labels include `labels`; None when none match."""
        name = name or self.name
        got = [s.value for s in self.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
        return sum(got) if got else None


def _parse_value(text: str, lineno: int) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text):
        raise PromFormatError("line %d: bad sample value %r" % (lineno, text))
    return float(text)


def _parse_labels(text: str, pos: int, lineno: int) -> tuple[dict, int]:
    """text[pos] == '{'; returns (labels, index after '}')."""
    labels: dict = {}
    i = pos + 1
    while True:
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        m = LABEL_NAME.match(text, i)
        if not m:
            raise PromFormatError("line %d: bad label name at column %d" % (lineno, i + 1))
        name = m.group(0)
        i = m.end()
        if text[i:i + 2] != '="':
            raise PromFormatError("line %d: expected =\" after label %s" % (lineno, name))
        i += 2
        value = []
        while True:
            if i >= len(text):
                raise PromFormatError("line %d: unterminated label value" % lineno)
            c = text[i]
            if c == "\\":
                nxt = text[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise PromFormatError("line %d: bad escape \\%s in label %s" % (lineno, nxt, name))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
                continue
            if c == '"':
                i += 1
                break
            if c == "\n":
                raise PromFormatError("line %d: raw newline in label value" % lineno)
            value.append(c)
            i += 1
        if name in labels:
            raise PromFormatError("line %d: label %s repeated" % (lineno, name))
        labels[name] = "".join(value)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == "}":
            return labels, i + 1
        raise PromFormatError("line %d: expected , or } after label %s" % (lineno, name))


def _family_of(sample_name: str, families: dict) -> str:
    """The family a sample belongs to: histogram/summary samples carry a suffix."""
    for suffix in ("_bucket", "_sum", "_count"):
        base = sample_name[:-len(suffix)]
        if sample_name.endswith(suffix) and base in families and \
                families[base].type in ("histogram", "summary"):
            return base
    return sample_name


def parse(text: str) -> dict:
    if not text:
        raise PromFormatError("empty exposition")
    if not text.endswith("\n"):
        raise PromFormatError("the exposition must end with a newline")
    families: dict = {}
    finished: set = set()   # families whose block of samples has ended
    current: str | None = None
    seen_series: set = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            raise PromFormatError("line %d: blank line" % lineno)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                kind, name = parts[1], parts[2]
                if not METRIC_NAME.fullmatch(name):
                    raise PromFormatError("line %d: bad metric name %r" % (lineno, name))
                fam = families.setdefault(name, Family(name))
                if kind == "HELP":
                    if fam.help is not None:
                        raise PromFormatError("line %d: second HELP for %s" % (lineno, name))
                    fam.help = parts[3] if len(parts) > 3 else ""
                else:
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise PromFormatError("line %d: bad TYPE line %r" % (lineno, line))
                    if fam.samples or getattr(fam, "_typed", False):
                        raise PromFormatError("line %d: TYPE for %s after its samples or twice" % (lineno, name))
                    fam.type = parts[3]
                    fam._typed = True
            continue  # other comments are allowed
        m = METRIC_NAME.match(line)
        if not m:
            raise PromFormatError("line %d: bad sample line %r" % (lineno, line))
        name = m.group(0)
        i = m.end()
        labels: dict = {}
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i, lineno)
        rest = line[i:]
        if not rest.startswith(" "):
            raise PromFormatError("line %d: expected a space before the value" % lineno)
        fields = rest.strip(" ").split(" ")
        if len(fields) not in (1, 2) or "" in fields:
            raise PromFormatError("line %d: expected 'value [timestamp]'" % lineno)
        value = _parse_value(fields[0], lineno)
        if len(fields) == 2 and not re.fullmatch(r"-?\d+", fields[1]):
            raise PromFormatError("line %d: bad timestamp %r" % (lineno, fields[1]))
        fam_name = _family_of(name, families)
        fam = families.setdefault(fam_name, Family(fam_name))
        if fam_name != current:
            if fam_name in finished:
                raise PromFormatError("line %d: samples of %s are not contiguous" % (lineno, fam_name))
            if current is not None:
                finished.add(current)
            current = fam_name
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise PromFormatError("line %d: duplicate series %s%s" % (lineno, name, labels))
        seen_series.add(key)
        fam.samples.append(Sample(name, labels, value, fields[0]))
    for fam in families.values():
        _check_family(fam)
    return families


def _check_family(fam: Family) -> None:
    if fam.type == "counter":
        if not fam.name.endswith("_total"):
            raise PromFormatError("counter %s should end in _total" % fam.name)
        for s in fam.samples:
            if s.name != fam.name:
                raise PromFormatError("counter %s has a sample %s" % (fam.name, s.name))
            if math.isnan(s.value) or s.value < 0:
                raise PromFormatError("counter %s is negative or NaN" % fam.name)
    elif fam.type == "gauge":
        for s in fam.samples:
            if s.name != fam.name:
                raise PromFormatError("gauge %s has a sample %s" % (fam.name, s.name))
    elif fam.type == "histogram":
        _check_histogram(fam)


def _check_histogram(fam: Family) -> None:
    groups: dict = {}
    for s in fam.samples:
        suffix = s.name[len(fam.name):]
        if suffix not in ("_bucket", "_sum", "_count"):
            raise PromFormatError("histogram %s has a sample %s" % (fam.name, s.name))
        rest = {k: v for k, v in s.labels.items() if k != "le"}
        g = groups.setdefault(tuple(sorted(rest.items())), {"buckets": [], "sum": None, "count": None})
        if suffix == "_bucket":
            if "le" not in s.labels:
                raise PromFormatError("histogram bucket of %s without le" % fam.name)
            g["buckets"].append((_parse_value(s.labels["le"], 0), s.value))
        else:
            if "le" in s.labels:
                raise PromFormatError("%s carries an le label" % s.name)
            if suffix == "_sum" and not EXACT_DECIMAL.fullmatch(s.raw):
                raise PromFormatError("%s = %r is not an exact decimal" % (s.name, s.raw))
            g[suffix[1:]] = s.value
    for key, g in groups.items():
        bounds = [b for b, _ in g["buckets"]]
        if not bounds or bounds[-1] != math.inf:
            raise PromFormatError("histogram %s%s has no +Inf bucket (last)" % (fam.name, dict(key)))
        if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
            raise PromFormatError("histogram %s buckets not in increasing le order" % fam.name)
        counts = [c for _, c in g["buckets"]]
        if any(b > a for a, b in zip(counts[1:], counts[:-1])):
            raise PromFormatError("histogram %s buckets are not cumulative" % fam.name)
        if g["count"] is None or g["sum"] is None:
            raise PromFormatError("histogram %s lacks _sum or _count" % fam.name)
        if g["count"] != counts[-1]:
            raise PromFormatError("histogram %s: +Inf bucket %g != _count %g" % (fam.name, counts[-1], g["count"]))
