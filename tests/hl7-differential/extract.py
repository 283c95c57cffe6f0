#!/usr/bin/env python3
"""Reads every HL7 fixture with the Python `hl7` package (an independent
parser) and prints, as JSON, the field values tocsin's normaliser uses.

Output: {"<file name>": [<message>, ...]} with one entry per message in file
order; an entry is either a map of field keys (see `fields`) or
{"__error__": "<reason>"} when the `hl7` package cannot parse it.

Keys, for each field of a segment the message has:
  "PV1-19"      the field as written (str() of the parsed field)
  "PV1-19.1"    repetition 1, component 1, escapes decoded by `hl7`
  "PID-3(r).1"  and "PID-3(r).5": components 1 and 5 of repetition r

Usage: extract.py FIXTURE_DIR
Needs: pip install hl7 (see tests/requirements.txt).
"""
import json
import os
import sys

import hl7  # a missing package must fail the caller's test, not be skipped

FIELDS = [("PID", 3), ("PV1", 2), ("PV1", 19), ("PV1", 45), ("MSH", 10), ("TXA", 2), ("TXA", 12)]
ENVELOPE = ("FHS", "BHS", "BTS", "FTS")


def messages(raw: bytes):
    """Splits a file into message texts: MLLP bytes and blank lines removed,
    batch envelope segments dropped, a new message at each MSH (after a
    byte-order mark or white space, which `cat` of files and indentation
    leave before it)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    text = text.replace("\x0b", "\r").replace("\x1c", "\r")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    out = []
    for line in text.split("\r"):
        if not line.strip() or line.startswith(ENVELOPE):
            continue
        head = line.lstrip().lstrip("\ufeff").lstrip()
        if head.startswith("MSH"):
            out.append([head])
        elif not out:
            out.append([line])
        else:
            out[-1].append(line)
    return ["\r".join(lines) for lines in out]


def get(msg, key):
    try:
        return msg[key]
    except (IndexError, KeyError):
        return ""


def fields(text):
    msg = hl7.parse(text)
    out = {}
    for name, num in FIELDS:
        try:
            seg = msg.segment(name)
        except KeyError:
            continue
        key = f"{name}-{num}"
        out[key] = str(seg[num]) if num < len(seg) else ""
        out[f"{key}.1"] = get(msg, f"{name}.F{num}.R1.C1")
        if name == "PID":
            r = 1
            while True:
                try:
                    msg[f"PID.F{num}.R{r}"]
                except IndexError:
                    break
                for c in (1, 5):
                    out[f"{key}({r}).{c}"] = get(msg, f"PID.F{num}.R{r}.C{c}")
                r += 1
    return out


def main():
    folder = sys.argv[1]
    result = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith((".hl7", ".bin")):
            continue
        with open(os.path.join(folder, name), "rb") as f:
            raw = f.read()
        entries = []
        for text in messages(raw):
            try:
                entries.append(fields(text))
            except Exception as e:  # the package's own parse errors
                entries.append({"__error__": f"{type(e).__name__}: {e}"})
        result[name] = entries
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
