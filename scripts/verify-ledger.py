#!/usr/bin/env python3
"""Independent verifier for a BallotLedger ledger (format version 1).

Written from docs/ledger-format.md alone.
Usage: verify-ledger.py LEDGER_DIR [--pubkey FILE|HEX] [--json]
       verify-ledger.py --check-proofs FILE   (proofs, checkpoints and receipts, one JSON per line)
       verify-ledger.py --tiles DIR|URL --pubkey KEY [--witness NAME=HEX]...   (§9: published tiles)
       verify-ledger.py --receipt FILE --pubkey KEY [--witness NAME=HEX]...    (§9: a .tlog-proof)
Exit 0: the ledger verifies; 2: it does not (FAIL at seq N); 66: not a ledger; 64: usage.
Needs PyPI `lmdb`; checks Ed25519 checkpoint signatures when `cryptography` is importable.

Anyone who rewrites a ledger can re-sign every checkpoint with a key of their own, so without
--pubkey (the daemon's checkpoint.key.pub, or its 64 hex digits) a pass shows integrity only,
not who signed; a checkpoint signed by another key than the first one's fails either way.
"""
import base64
import hashlib
import json
import os
import re
import struct
import sys
import unicodedata

import lmdb

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # signatures are then reported as not checked
    Ed25519PublicKey = None


class Corrupt(Exception):
    pass


# §2 payload primitives -------------------------------------------------------
IDENT = re.compile(rb"[a-z0-9][a-z0-9._-]{0,63}\Z")
ROLES = {0: "system", 1: "admin", 2: "juror", 3: "importer", 4: "observer"}


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise Corrupt(f"length runs past the end (need {n} bytes at offset {self.pos})")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def num(self, fmt):
        return struct.unpack(">" + fmt, self.take(struct.calcsize(fmt)))[0]

    def utf8(self, b):
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise Corrupt(f"invalid UTF-8 {b[:40]!r}") from None

    def read(self, kind):
        if kind == "f64":
            v = self.num("d")
            if v != v or v in (float("inf"), float("-inf")):
                raise Corrupt(f"a number that is not finite ({v}): the ledger stores none (§3 primitives)")
            return v
        if kind in PRIMS:
            return self.num(PRIMS[kind])
        if kind == "bool":
            v = self.num("B")
            if v > 1:
                raise Corrupt(f"bool byte {v}")
            return v == 1
        if kind in ("str", "id"):
            b = self.take(self.num("H"))
            if kind == "id" and not IDENT.match(b):
                raise Corrupt(f"invalid identifier {b[:70]!r}")
            return self.utf8(b)
        if kind in ("key32", "sig64"):
            return self.take(32 if kind == "key32" else 64)
        raise AssertionError(kind)


PRIMS = {"u8": "B", "u16": "H", "u32": "I", "u64": "Q", "i32": "i", "i64": "q",
         "f64": "d", "time": "q"}

# §3 event types: "kind name" fields in stored order; (name, [fields]) is a u16 count
# followed by that many repetitions of the fields.
EVENTS = {
    1: ("election.defined", ["id election", "str title", "time opens_at", "time closes_at",
        "i32 scale_min", "i32 scale_max", "f64 min_goal_attainment_direct",
        "f64 min_goal_attainment_after_one_year",
        ("criteria", ["id criterion", "str title", "f64 weight"]),
        "f64 public_weight", "f64 jury_weight", "bool public_standings",
        "i64 series_bucket_seconds"]),
    2: ("nominee.added", ["id election", "id nominee", "str name",
        "f64 goal_attainment_direct", "f64 goal_attainment_after_one_year"]),
    3: ("voting.opened", ["id election"]),
    4: ("voting.closed", ["id election"]),
    5: ("vote.cast", ["id election", "id nominee", "key32 voter_key", "time cast_at",
        "str channel"]),
    6: ("vote.invalidated", ["id election", "u64 vote_seq", "id nominee", "time cast_at",
        "str reason"]),
    7: ("juror.added", ["id election", "id juror", "str name"]),
    8: ("jury.scored", ["id election", "id juror", "id nominee", "id criterion", "i32 score",
        "u64 supersedes"]),
    9: ("jury.closed", ["id election"]),
    10: ("result.certified", ["id election", "id winner", ("ranking", ["id nominee"])]),
    11: ("import.recorded", ["id election", "str file_name", "u64 file_size",
         "key32 file_sha256", "u64 rows_read", "u64 accepted", "u64 already_present",
         ("refusals", ["str reason", "u64 rows"]), "u64 first_seq", "u64 last_seq"]),
    12: ("checkpoint.signed", ["u64 size", "key32 root", "time taken_at", "u8 reason",
         ("elections", ["id election", "key32 tally", "key32 jury", "key32 ranking"]),
         "key32 public_key", "sig64 signature"]),
    13: ("checkpoint.noted", ["u64 size", "key32 root", "time taken_at", "u8 reason",
         ("elections", ["id election", "key32 tally", "key32 jury", "key32 ranking"]),
         "str origin", "key32 public_key", "sig64 signature"]),
    14: ("result.proposed", ["id election", "id winner", ("ranking", ["id nominee"]), "str justification"]),
    15: ("result.cosigned", ["id election", "u64 proposal", "id juror", "sig64 signature"]),
}
# §3.2: what only some records carry after their fields, when there is one
TRAILING = {
    7: ["str key_name", "key32 key"],
    8: ["sig64 signature"],
    10: ["str justification", "u64 proposal", ("cosignatures", ["id juror", "sig64 signature"])],
}
CHECKPOINT_TYPES = (12, 13)  # §3.1: signed in the ledger's own form, or as a C2SP note
RULES_VERSIONS = {1, 2}  # §7 "Rules versions"
CHECKPOINT_REASONS = {1, 2, 3, 4}  # §3 type 12: on request, interval, voting closed, certified
SIG_CONTEXT = b"BallotLedger checkpoint v1\x00"  # §3.1, 27 bytes


def read_fields(r, fields):
    out = {}
    for f in fields:
        if isinstance(f, tuple):
            name, sub = f
            out[name] = [read_fields(r, sub) for _ in range(r.num("H"))]
        else:
            kind, name = f.split()
            out[name] = r.read(kind)
    return out


def decode(rec, key_seq):
    """§2: the record header, then the §3 payload. Returns (header, payload_offset, fields)."""
    r = Reader(rec)
    version = r.num("B")
    if version != 1:
        raise Corrupt(f"record format version {version}, this verifier knows only 1 (§6)")
    etype = r.num("B")
    if etype not in EVENTS:
        raise Corrupt(f"unknown event type {etype}")
    h = {"type": etype, "seq": r.num("Q"), "ts": r.num("q"), "role": r.num("B"), "uid": r.num("I")}
    if h["seq"] != key_seq:
        raise Corrupt(f"sequence field {h['seq']} differs from key {key_seq}")
    if h["role"] not in ROLES:
        raise Corrupt(f"unknown actor role {h['role']}")
    kb = r.take(r.num("H"))
    if len(kb) > 256:
        raise Corrupt(f"idempotency key of {len(kb)} bytes (max 256)")
    h["key"] = r.utf8(kb)
    plen = r.num("I")
    start = r.pos
    if start + plen != len(rec):
        raise Corrupt(f"record is {len(rec)} bytes, header says {start + plen} (29+K+P)")
    fields = read_fields(r, EVENTS[etype][1])
    if etype == 1:  # §3 type 1: the rules version, absent before versions (1); v2 adds the country code
        fields["rules_version"] = r.num("H") if r.pos < len(rec) else 1
        if fields["rules_version"] not in RULES_VERSIONS:
            raise Corrupt(f"rules version {fields['rules_version']}, this verifier knows {sorted(RULES_VERSIONS)}")
        if fields["rules_version"] >= 2:
            fields["voter_phone_country_code"] = r.num("H")
        if r.pos < len(rec):  # §3 type 1: witnesses_required, written only when true...
            fields["witnesses_required"] = r.read("bool")
            if r.pos < len(rec):  # ...or when the jury's signature policy follows (§3.2)
                fields["jury_signatures_required"] = r.read("bool")
                fields["jury_quorum"] = r.num("H")
                if not fields["jury_signatures_required"] and fields["jury_quorum"] == 0:
                    raise Corrupt("a jury signature policy that asks for nothing is not written (§3.2)")
            elif not fields["witnesses_required"]:
                raise Corrupt("witnesses_required is written only when true (1)")
    elif etype in TRAILING and r.pos < len(rec):
        fields.update(read_fields(r, TRAILING[etype]))
        if etype == 10 and not fields["justification"] and not fields["cosignatures"]:
            raise Corrupt("an empty justification without co-signatures is not written (§3.2)")
        if etype == 10 and (fields["proposal"] == 0) != (not fields["cosignatures"]):
            raise Corrupt("a certification names its proposal exactly when it has co-signatures (§3.2)")
    if r.pos != len(rec):
        raise Corrupt(f"{len(rec) - r.pos} bytes left over after the payload")
    return h, start, fields


def command_kind(t, f):
    """§2: the kind of command an event of type t answers, whose keys share one space."""
    if t in CHECKPOINT_TYPES:
        return 12                      # both checkpoint types are one
    if t == 14 or (t == 10 and not f.get("cosignatures")):
        return "result.certify"
    if t == 15 or t == 10:
        return "result.sign"
    return t


# §3.2 jurors' signatures -------------------------------------------------------
# §3.2: Ed25519 points of small order (libsodium's list, sign bit cleared)
SMALL_ORDER = {bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")}


def has_control(text, allowed=""):
    """§3.2: a control character (Unicode category Cc) other than those allowed."""
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def canonical_point(key):
    """§3.2: y (little-endian, the sign bit cleared) below p = 2^255 - 19."""
    return int.from_bytes(bytes([*key[:31], key[31] & 0x7F]), "little") < 2**255 - 19


class JurySignatures:
    """What jurors' signatures promise, from §3.2 alone: a juror's key is the first recorded,
    canonical, not of small order and not another juror's; every signature verifies with it
    over the statement rebuilt from the event and the ledger's id; where an election requires
    signed scores, each score has one; a co-signature signs the newest proposal, once per juror;
    a co-signed certification is that proposal, repeating the co-signatures recorded for it and
    adding the quorum's last; justifications and key names hold no control characters (but
    newlines and tabs in a justification). The jury's other rules (a ranking that changed
    since the proposal, among them) are the Swift audit's replay."""

    def __init__(self, ledger_id):
        self.ledger = ledger_id.hex()
        self.required, self.quorum, self.keys, self.proposals = {}, {}, {}, {}

    def score_statement(self, f):
        return ("ballotledger/jury-score/v1\nledger %s\nelection %s\njuror %s\nnominee %s\ncriterion %s\n"
                "score %d\nsupersedes %d\n" % (self.ledger, f["election"], f["juror"], f["nominee"], f["criterion"],
                                                f["score"], f["supersedes"])).encode()

    def result_statement(self, proposal, election, winner, ranking, justification):
        order = "".join(n + "\n" for n in ranking).encode()
        return ("ballotledger/jury-result/v1\nledger %s\nproposal %d\nelection %s\nwinner %s\nranking %s\n"
                "justification %s\n" % (self.ledger, proposal, election, winner, hashlib.sha256(order).hexdigest(),
                                        hashlib.sha256(justification.encode()).hexdigest())).encode()

    def seen_jurors(self):
        return self.keys.keys()

    def verify(self, election, juror, signature, statement, what):
        key = self.keys.get((election, juror))
        if key is None:
            raise Corrupt(f"the {what} of juror {juror!r} is signed, but no key of theirs is recorded in {election!r}")
        if Ed25519PublicKey is None:
            return
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(signature, statement)
        except InvalidSignature:
            raise Corrupt(f"the {what} of juror {juror!r} does not verify with their key (§3.2)") from None

    def check(self, seq, t, f):
        if t == 1:
            self.required[f["election"]] = f.get("jury_signatures_required", False)
            self.quorum[f["election"]] = f.get("jury_quorum", 0)
        elif t == 7:
            if (f["election"], f["juror"]) in self.seen_jurors():
                raise Corrupt(f"juror {f['juror']!r} is added to {f['election']!r} a second time (§3.2: a juror's key is the first recorded)")
            self.keys[(f["election"], f["juror"])] = f.get("key")
            if "key" not in f:
                return
            if bytes([*f["key"][:31], f["key"][31] & 0x7F]) in SMALL_ORDER:
                raise Corrupt(f"juror {f['juror']!r} has a key of small order (§3.2)")
            if not canonical_point(f["key"]):
                raise Corrupt(f"juror {f['juror']!r} has a key that is not a canonical encoding (§3.2)")
            if has_control(f["key_name"]):
                raise Corrupt(f"juror {f['juror']!r} has a key name with a control character (§3.2)")
            if any(k == f["key"] for (e, j), k in self.keys.items() if e == f["election"] and j != f["juror"]):
                raise Corrupt(f"juror {f['juror']!r} has another juror's key (§3.2)")
        elif t == 8:
            if "signature" in f:
                self.verify(f["election"], f["juror"], f["signature"], self.score_statement(f), "score")
            elif self.required.get(f["election"]):
                raise Corrupt(f"an unsigned score of juror {f['juror']!r} in {f['election']!r}, which requires signed scores (§3.2)")
        elif t == 14:  # a newer proposal replaces the one before, and its co-signatures
            if has_control(f["justification"], "\n\t"):
                raise Corrupt("the justification holds a control character other than newline and tab (§3.2)")
            ranking = [x["nominee"] for x in f["ranking"]]
            self.proposals[f["election"]] = {
                "seq": seq, "winner": f["winner"], "ranking": ranking, "justification": f["justification"],
                "statement": self.result_statement(seq, f["election"], f["winner"], ranking, f["justification"]),
                "cosigned": []}
        elif t == 15:
            proposal = self.proposals.get(f["election"])
            if proposal is None or proposal["seq"] != f["proposal"]:
                raise Corrupt(f"juror {f['juror']!r} co-signs event {f['proposal']}, not the result awaiting the jury (§3.2)")
            if any(c["juror"] == f["juror"] for c in proposal["cosigned"]):
                raise Corrupt(f"juror {f['juror']!r} co-signs the proposal at event {f['proposal']} a second time (§3.2)")
            self.verify(f["election"], f["juror"], f["signature"], proposal["statement"], "co-signature")
            proposal["cosigned"].append({"juror": f["juror"], "signature": f["signature"]})
        elif t == 10:
            ranking = [x["nominee"] for x in f["ranking"]]
            cosignatures = f.get("cosignatures", [])
            quorum = self.quorum.get(f["election"], 0)
            if len(cosignatures) != quorum:
                raise Corrupt(f"the certification of {f['election']!r} has {len(cosignatures)} co-signatures, where its jury_quorum is {quorum} (§3.2)")
            if cosignatures:
                # §3.2: the certification is the quorum's last co-signature of the newest
                # proposal, repeating it and the co-signatures recorded for it, in order.
                p = self.proposals.get(f["election"])
                if p is None or p["seq"] != f["proposal"]:
                    raise Corrupt(f"the certification of {f['election']!r} names the proposal at event {f['proposal']}, not the result awaiting the jury (§3.2)")
                if (f["winner"], ranking, f.get("justification", "")) != (p["winner"], p["ranking"], p["justification"]):
                    raise Corrupt(f"the certification of {f['election']!r} is not the result proposed at event {p['seq']} (§3.2)")
                earlier = [(c["juror"], c["signature"]) for c in cosignatures[:-1]]
                if earlier != [(c["juror"], c["signature"]) for c in p["cosigned"]] or \
                        cosignatures[-1]["juror"] in [c["juror"] for c in p["cosigned"]]:
                    raise Corrupt(f"the certification of {f['election']!r} does not repeat the co-signatures recorded for its proposal, then a new juror's (§3.2)")
                statement = self.result_statement(f["proposal"], f["election"], f["winner"], ranking, f.get("justification", ""))
                for c in cosignatures:
                    self.verify(f["election"], c["juror"], c["signature"], statement, "co-signature of the certified result")
            self.proposals.pop(f["election"], None)


# §4 Merkle tree (RFC 6962) ---------------------------------------------------
def sha(*parts):
    return hashlib.sha256(b"".join(parts)).digest()


def fold_root(frontier):
    """Root of the prefix from its peaks, right fold (§4 'The root of any prefix')."""
    if not frontier:
        return sha(b"")
    root = frontier[-1][1]
    for _, peak in reversed(frontier[:-1]):
        root = sha(b"\x01", peak, root)
    return root


def verify(path):
    """Returns (events, root, checkpoints); raises Corrupt with .seq set, or NotALedger."""
    env = open_env(path)
    cur_seq = 0
    try:
        with env.begin() as txn:
            try:  # §1: the five named databases
                dbs = {n: env.open_db(n.encode(), txn=txn, create=False)
                       for n in ("events", "merkle", "projections", "series", "meta")}
            except lmdb.NotFoundError as e:
                raise NotALedger(f"{path}: missing named database ({e})")
            fmt = txn.get(b"format", db=dbs["meta"])
            if fmt != b"\x01":
                raise Corrupt(f"meta 'format' is {fmt!r}, this verifier knows only version 1 (§6)")

            frontier = []  # [(level, hash)], perfect subtrees left to right
            mcur = txn.cursor(db=dbs["merkle"])
            more = mcur.first()
            prev_ts, seen_keys, elections, checkpoints = None, set(), [], []
            stored_id = txn.get(b"ledger_id", db=dbs["meta"])  # §1: zeros when absent or not 16 bytes
            jury = JurySignatures(stored_id if stored_id is not None and len(stored_id) == 16 else bytes(16))
            for key, rec in txn.cursor(db=dbs["events"]):
                cur_seq += 1
                if len(key) != 8:
                    raise Corrupt(f"events key {key.hex()} is not 8 bytes")
                got = int.from_bytes(key, "big")
                if got != cur_seq:  # §1: keys are exactly 1..n
                    raise Corrupt(f"events key {got} where {cur_seq} was expected (gap)")
                h, pstart, f = decode(rec, cur_seq)
                if prev_ts is not None and h["ts"] < prev_ts:  # §2 timestamps never decrease
                    raise Corrupt(f"timestamp {h['ts']} is before previous {prev_ts}")
                prev_ts = h["ts"]
                if h["key"]:  # §2: a non-empty idempotency key is unique within its kind of command
                    scope = command_kind(h["type"], f)
                    if (scope, h["key"]) in seen_keys:
                        raise Corrupt(f"idempotency key {h['key']!r} used twice by {EVENTS[h['type']][0]} events")
                    seen_keys.add((scope, h["key"]))
                t = h["type"]
                jury.check(cur_seq, t, f)
                if t == 1:
                    elections.append(f["election"])
                elif t == 6:  # §3.1 last paragraph: must match the vote it names
                    vote = (txn.get(f["vote_seq"].to_bytes(8, "big"), db=dbs["events"])
                            if 0 < f["vote_seq"] < cur_seq else None)
                    if vote is None:
                        raise Corrupt(f"invalidates seq {f['vote_seq']}, not an earlier event")
                    _, _, v = decode(vote, f["vote_seq"])
                    if vote[1] != 5 or (v["election"], v["nominee"], v["cast_at"]) != \
                            (f["election"], f["nominee"], f["cast_at"]):
                        raise Corrupt(f"invalidation does not match vote {f['vote_seq']}")
                elif t == 11:  # §3: import sums and sequence range
                    refused = sum(x["rows"] for x in f["refusals"])
                    if f["accepted"] + f["already_present"] + refused != f["rows_read"]:
                        raise Corrupt("import counts do not add up to rows read")
                    a, b = f["first_seq"], f["last_seq"]
                    if (a, b) != (0, 0) and not 0 < a <= b < cur_seq:
                        raise Corrupt(f"import vote range {a}..{b} not before the record")
                elif t in CHECKPOINT_TYPES:  # §3.1 checkpoint, checked against the root of events 1..n
                    check_origin(t, f, checkpoints[-1] if checkpoints else None)
                    default_origin = "ballotledger/" + jury.ledger  # §1: a default origin names the ledger id
                    if t == 13 and f["origin"].startswith("ballotledger/") and len(f["origin"]) == len(default_origin) \
                            and f["origin"] != default_origin:
                        raise Corrupt(f"checkpoint origin {f['origin']!r} names another ledger id than meta 'ledger_id' ({jury.ledger})")
                    checkpoints.append(check_checkpoint(cur_seq, h, rec[pstart:], f,
                                                        fold_root(frontier), elections))
                # §4 leaf, then merge equal-level peaks; nodes of level >= 4 are stored
                frontier.append((0, sha(b"\x00", rec)))
                while len(frontier) > 1 and frontier[-1][0] == frontier[-2][0]:
                    (lvl, right), (_, left) = frontier.pop(), frontier.pop()
                    node = (lvl + 1, sha(b"\x01", left, right))
                    frontier.append(node)
                    if node[0] >= 4:
                        want = (cur_seq - 1).to_bytes(8, "big") + bytes([node[0]])
                        if not more or mcur.key() != want:
                            have = mcur.key().hex() if more else "end of merkle database"
                            raise Corrupt(f"merkle node {want.hex()} expected, found {have}")
                        if mcur.value() != node[1]:
                            raise Corrupt(f"stored merkle node level {node[0]} differs")
                        more = mcur.next()
            if more:
                cur_seq = int.from_bytes(mcur.key()[:8], "big") + 1
                raise Corrupt(f"extra merkle node stored under {mcur.key().hex()}")
            return cur_seq, fold_root(frontier), checkpoints
    except Corrupt as e:
        e.seq = cur_seq
        raise
    finally:
        env.close()


def note_text(f):
    """§3.1: a noted checkpoint's C2SP note text: origin, size, base64 root, each line ended."""
    return f"{f['origin']}\n{f['size']}\n{base64.b64encode(f['root']).decode()}\n".encode()


def check_signature(f, payload):
    """§3.1: the checkpoint's Ed25519 signature, over its note's text (type 13), or over the
    context and its payload's signed part (type 12)."""
    message = note_text(f) if "origin" in f else SIG_CONTEXT + payload[:-64]
    try:
        Ed25519PublicKey.from_public_bytes(f["public_key"]).verify(f["signature"], message)
    except InvalidSignature:
        raise Corrupt("checkpoint signature does not verify") from None


def check_origin(t, f, last):
    """§3.1: an origin is 1 to 255 printable ASCII characters (0x21-0x7E) but '+'; after a
    noted checkpoint, every checkpoint is a note of the same origin."""
    if t == 13:
        o = f["origin"]
        if not 1 <= len(o) <= 255 or any(not 0x21 <= ord(c) <= 0x7E or c == "+" for c in o):
            raise Corrupt(f"checkpoint origin {o[:80]!r} is not an origin")
    if last is not None and last["origin"] is not None:
        if t != 13:
            raise Corrupt(f"a checkpoint after the note at seq {last['seq']} must be a note too")
        if f["origin"] != last["origin"]:
            raise Corrupt(f"checkpoint origin {f['origin']!r} after origin {last['origin']!r}: a log keeps its name")


def check_checkpoint(seq, h, payload, f, root, elections):
    n = f["size"]
    if n != seq - 1:
        raise Corrupt(f"checkpoint size {n}, must be seq - 1 = {seq - 1}")
    if f["root"] != root:
        raise Corrupt(f"checkpoint root {f['root'].hex()} != computed {root.hex()}")
    if f["taken_at"] != h["ts"]:
        raise Corrupt("checkpoint taken_at differs from the record timestamp")
    if f["reason"] not in CHECKPOINT_REASONS:
        raise Corrupt(f"unknown checkpoint reason {f['reason']}")
    if [e["election"] for e in f["elections"]] != elections:
        raise Corrupt("checkpoint does not list every election defined so far, in order")
    checked = False
    if Ed25519PublicKey is not None:
        check_signature(f, payload)
        checked = True
    return {"seq": seq, "size": n, "root": root.hex(), "signature_checked": checked,
            "public_key": f["public_key"].hex(), "origin": f.get("origin")}


# Proofs, checkpoints and receipts on their own (§4, §3.1) ------------------------------
def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 §2.1.3.2: does `proof` lead from leaf `index` to `root` of a tree of `size`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha(b"\x01", p, r)
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        else:
            r = sha(b"\x01", r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(n1, n2, root1, root2, proof):
    """RFC 9162 §2.1.4.2: does `proof` show the tree (n2, root2) extends (n1, root1)?"""
    if not 0 <= n1 <= n2:
        return False
    if n1 == n2:
        return not proof and root1 == root2
    if n1 == 0:  # every tree extends the empty one, whose root is SHA-256 of nothing
        return not proof and root1 == sha(b"")
    path = ([root1] if n1 & (n1 - 1) == 0 else []) + list(proof)
    if not path:
        return False
    fn, sn = n1 - 1, n2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = sha(b"\x01", c, fr)
            sr = sha(b"\x01", c, sr)
            while not (fn & 1 or fn == 0):
                fn >>= 1
                sn >>= 1
        else:
            sr = sha(b"\x01", sr, c)
        fn >>= 1
        sn >>= 1
    return fr == root1 and sr == root2 and sn == 0


def signed_checkpoint(record_hex, seq, pinned):
    """A checkpoint record as stored (§2, §3 type 12 or 13), its signature checked against the pinned
    key; returns its fields, or raises Corrupt saying why not."""
    rec = bytes.fromhex(record_hex)
    h, start, f = decode(rec, seq)
    if h["type"] not in CHECKPOINT_TYPES:
        raise Corrupt(f"event {seq} is a {EVENTS[h['type']][0]}, not a checkpoint")
    if f["public_key"] != pinned:
        raise Corrupt(f"signed by key {f['public_key'].hex()}, not the pinned key")
    check_signature(f, rec[start:])
    return f


def check_claim(c):
    """One claim of --check-proofs; returns None when it holds, else why not."""
    h = bytes.fromhex
    try:
        kind = c["kind"]
        if kind == "inclusion":
            ok = verify_inclusion(h(c["leaf"]), c["index"], c["size"], [h(p) for p in c["proof"]], h(c["root"]))
        elif kind == "consistency":
            ok = verify_consistency(c["old_size"], c["new_size"], h(c["old_root"]), h(c["new_root"]),
                                    [h(p) for p in c["proof"]])
        elif kind == "checkpoint":
            signed_checkpoint(c["record"], c["seq"], h(c["pubkey"]))
            ok = True
        elif kind == "receipt":
            # A receipt (seq, leaf hash) holds when the checkpoint is signed by the pinned key,
            # covers the event, and the proof leads from the leaf to the root it signs.
            f = signed_checkpoint(c["checkpoint"], c["checkpoint_seq"], h(c["pubkey"]))
            ok = 1 <= c["seq"] <= f["size"] and verify_inclusion(
                h(c["leaf_hash"]), c["seq"] - 1, f["size"], [h(p) for p in c["proof"]], f["root"])
        else:
            return f"unknown kind {kind!r}"
    except Corrupt as e:
        return str(e)
    except (KeyError, ValueError, TypeError, struct.error) as e:
        return f"malformed: {e}"
    return None if ok else "does not verify"


def check_proofs(path):
    """Prints 'accepted' or 'refused: why' for each claim in the JSON-lines file at `path`."""
    if Ed25519PublicKey is None:
        print("verify-ledger.py: --check-proofs needs the 'cryptography' package", file=sys.stderr)
        return 64
    with open(path) as f:
        for line in f:
            why = check_claim(json.loads(line))
            print("accepted" if why is None else f"refused: {why}")
    return 0


class NotALedger(Exception):
    pass


def open_env(path):
    """§1: read-only, with the lock (a live ledger may be written meanwhile)."""
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "data.mdb")):
        raise NotALedger(f"{path}: not a directory holding data.mdb")
    try:
        return lmdb.open(path, readonly=True, max_dbs=5)
    except lmdb.Error as e:
        if "ermission" in str(e) or "read-only" in str(e).lower():
            try:
                return lmdb.open(path, readonly=True, max_dbs=5, lock=False)
            except lmdb.Error:
                pass
        raise NotALedger(f"{path}: cannot open as LMDB ({e})") from None


def check_signers(cps, pinned):
    """Every checkpoint by the pinned key, or, with none pinned, by the first checkpoint's key."""
    for c in cps:
        if pinned is not None and c["public_key"] != pinned:
            e = Corrupt(f"checkpoint signed by key {c['public_key']}, not the key given ({pinned})")
        elif pinned is None and c["public_key"] != cps[0]["public_key"]:
            e = Corrupt(f"checkpoint signed by key {c['public_key']}, but the first checkpoint (seq {cps[0]['seq']}) "
                        f"by key {cps[0]['public_key']}: the signing key changed within the ledger")
        else:
            continue
        e.seq = c["seq"]
        raise e


def read_pubkey(text):
    """A key file (64 hex digits, as ballotd writes checkpoint.key.pub) or the hex itself."""
    if os.path.isfile(text):
        with open(text) as f:
            text = f.read()
    text = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        return None
    return text


# §9 Publication: notes, cosignatures, tiles, receipts --------------------------
def read_source(source, path):
    """A file of a tiles directory, or of a tiles URL (http://...)."""
    if source.startswith("http://") or source.startswith("https://"):
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(source.rstrip("/") + "/" + path, timeout=30) as reply:
                return reply.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise Corrupt(f"GET {path}: HTTP {e.code}") from None
    full = os.path.join(source, path)
    if not os.path.isfile(full):
        return None
    with open(full, "rb") as f:
        return f.read()


def key_id(name, sig_type, key):
    """§9 signed note: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ type ‖ key)."""
    return sha(name.encode(), b"\n", bytes([sig_type]), key)[:4]


def parse_note(data):
    """§9: text (to the last empty line) and its signature lines (name, key ID, bytes)."""
    if len(data) > 65536 or not data.endswith(b"\n"):
        raise Corrupt("not a signed note: over 64 KiB, or no final newline")
    at = data.rfind(b"\n\n")
    if at < 0:
        raise Corrupt("not a signed note: no empty line before its signatures")
    text, sigs = data[:at + 1], []
    for line in data[at + 2:-1].split(b"\n"):
        parts = line.split(b" ")
        if len(parts) != 3 or parts[0] != "\u2014".encode():
            raise Corrupt(f"not a signature line: {line[:80]!r}")
        raw = base64.b64decode(parts[2], validate=True)
        sigs.append((parts[1].decode(), raw[:4], raw[4:]))
    lines = text.decode().split("\n")
    if len(lines) < 4 or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise Corrupt("the note's text is not a checkpoint: origin, size, root")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise Corrupt("the checkpoint's root is not 32 bytes")
    return text, sigs, lines[0], int(lines[1]), root


def check_note(data, log_key, witnesses):
    """§9: the log's Ed25519 signature (key name = origin) and each witness's cosignature."""
    text, sigs, origin, size, root = parse_note(data)

    def find(name, sig_type, key):
        kid = key_id(name, sig_type, key)
        for n, k, s in sigs:
            if n == name and k == kid:
                return s
        raise Corrupt(f"the checkpoint has no signature line of {name}")

    try:
        Ed25519PublicKey.from_public_bytes(log_key).verify(find(origin, 1, log_key), text)
    except InvalidSignature:
        raise Corrupt(f"the log's signature ({origin}) does not verify") from None
    for name, key in witnesses:
        s = find(name, 4, key)
        if len(s) != 72:
            raise Corrupt(f"the cosignature of {name} is {len(s)} bytes, not 72")
        when = struct.unpack(">Q", s[:8])[0]
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(s[8:], b"cosignature/v1\ntime %d\n" % when + text)
        except InvalidSignature:
            raise Corrupt(f"the cosignature of {name} does not verify") from None
    return origin, size, root


def tile_path(level, n, width):
    """§9 tiles: tile/<L>/<N>[.p/<W>], N in 3-digit groups, all but the last with an x."""
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    name = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    return f"tile/{level}/{name}" + ("" if width == 256 else f".p/{width}")


def mth(hashes):
    """§4: the root of a list of leaf hashes (RFC 6962 MTH)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1
    while k * 2 < len(hashes):
        k *= 2
    return sha(b"\x01", mth(hashes[:k]), mth(hashes[k:]))


def check_tiles(source, log_key, witnesses):
    """§9 tiles: the checkpoint's signatures; every bundle's records decode and hash to their
    level-0 tile; each level's tiles are the roots of the full tiles below; the leaves give the
    checkpoint's root. Returns (size, bundled entries)."""
    data = read_source(source, "checkpoint")
    if data is None:
        raise Corrupt("there is no checkpoint")
    origin, size, root = check_note(data, log_key, witnesses)
    below, level, bundled = None, 0, 0
    while size >> (8 * level):
        count = size >> (8 * level)
        row = []
        for n in range((count + 255) // 256):
            width = min(256, count - 256 * n)
            tile = read_source(source, tile_path(level, n, width))
            if tile is None or len(tile) != 32 * width:
                raise Corrupt(f"{tile_path(level, n, width)} is missing or not {32 * width} bytes")
            hashes = [tile[i:i + 32] for i in range(0, len(tile), 32)]
            if level > 0:
                for i, h in enumerate(hashes):
                    if h != mth(below[(256 * n + i) * 256:(256 * n + i + 1) * 256]):
                        raise Corrupt(f"{tile_path(level, n, width)}: hash {i} is not the root of the tile below")
            else:
                bundle = read_source(source, tile_path("entries", n, width))
                if bundle is not None:
                    at = 0
                    for i in range(width):
                        seq = 256 * n + i + 1
                        if at + 2 > len(bundle):
                            raise Corrupt(f"{tile_path('entries', n, width)} ends before record {seq}")
                        length = struct.unpack(">H", bundle[at:at + 2])[0]
                        rec = bundle[at + 2:at + 2 + length]
                        at += 2 + length
                        try:
                            decode(rec, seq)
                        except Corrupt as e:
                            raise Corrupt(f"{tile_path('entries', n, width)}: record {seq}: {e}") from None
                        if sha(b"\x00", rec) != hashes[i]:
                            raise Corrupt(f"record {seq} does not hash to its leaf in {tile_path(0, n, width)}")
                    if at != len(bundle):
                        raise Corrupt(f"{tile_path('entries', n, width)} has bytes after its {width} records")
                    bundled = 256 * n + width
                # (no bundle: withheld while an election is sealed; the tiles still verify)
            row += hashes
        if level == 0 and mth(row) != root:
            raise Corrupt(f"the leaves in the tiles do not give the checkpoint's root for size {size}")
        below, level = row, level + 1
    return origin, size, bundled


def check_receipt(path, log_key, witnesses):
    """§9 receipt (c2sp.org/tlog-proof): signatures, the record's leaf led to the root."""
    with open(path, "rb") as f:
        data = f.read()
    at = data.find(b"\n\n")
    if at < 0:
        raise Corrupt("the receipt has no empty line before its checkpoint")
    lines = data[:at].decode().split("\n")
    if lines[0] != "c2sp.org/tlog-proof@v1" or len(lines) < 3 or not lines[1].startswith("extra "):
        raise Corrupt("not a receipt: c2sp.org/tlog-proof@v1, then extra (the record)")
    record = base64.b64decode(lines[1][6:], validate=True)
    if not re.fullmatch(r"index (0|[1-9][0-9]*)", lines[2]):
        raise Corrupt("the receipt's third line is not 'index <n>'")
    index = int(lines[2][6:])
    proof = [base64.b64decode(p, validate=True) for p in lines[3:]]
    origin, size, root = check_note(data[at + 2:], log_key, witnesses)
    _, _, fields = decode(record, index + 1)
    if not verify_inclusion(sha(b"\x00", record), index, size, proof, root):
        raise Corrupt(f"the inclusion proof does not lead record {index + 1} to the checkpoint's root")
    return origin, size, index + 1, fields


def publication(argv):
    """--tiles DIR|URL or --receipt FILE, with --pubkey HEX and --witness NAME=HEX..."""
    args, witnesses, log_key = list(argv), [], None
    while "--witness" in args:
        at = args.index("--witness")
        name, _, key = (args[at + 1] if at + 1 < len(args) else "").partition("=")
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            print("verify-ledger.py: --witness NAME=HEX (the witness's key name and 64 hex digits)", file=sys.stderr)
            return 64
        witnesses.append((name, bytes.fromhex(key)))
        del args[at:at + 2]
    if "--pubkey" in args:
        at = args.index("--pubkey")
        key = read_pubkey(args[at + 1]) if at + 1 < len(args) else None
        log_key = bytes.fromhex(key) if key else None
        del args[at:at + 2]
    if log_key is None or len(args) != 2 or Ed25519PublicKey is None:
        print("usage: verify-ledger.py --tiles DIR|URL|--receipt FILE --pubkey FILE|HEX [--witness NAME=HEX]...  (needs 'cryptography')",
              file=sys.stderr)
        return 64
    try:
        if args[0] == "--tiles":
            origin, size, bundled = check_tiles(args[1], log_key, witnesses)
            print(f"OK: {origin}: {size} events in the tiles hash to the signed root; {bundled} records in the bundles decode and hash to their leaves"
                  + (f"; cosigned by {', '.join(n for n, _ in witnesses)}" if witnesses else ""))
        else:
            origin, size, seq, fields = check_receipt(args[1], log_key, witnesses)
            print(f"OK: record {seq} ({fields}) is in the tree of {size} events of {origin}"
                  + (f"; cosigned by {', '.join(n for n, _ in witnesses)}" if witnesses else ""))
    except (Corrupt, ValueError, struct.error) as e:
        print(f"FAIL: {e}")
        return 2
    return 0


def main(argv):
    if argv and argv[0] in ("--tiles", "--receipt"):
        return publication(argv)
    if len(argv) == 2 and argv[0] == "--check-proofs":
        return check_proofs(argv[1])
    args = [a for a in argv if a != "--json"]
    as_json = len(args) != len(argv)
    pinned = None
    if "--pubkey" in args:
        at = args.index("--pubkey")
        pinned = read_pubkey(args[at + 1]) if at + 1 < len(args) else None
        if pinned is None:
            print("verify-ledger.py: --pubkey needs a key file or 64 hex digits", file=sys.stderr)
            return 64
        if Ed25519PublicKey is None:
            # Without signature checks a pinned key would only be compared with a field anyone can write.
            print("verify-ledger.py: --pubkey needs the 'cryptography' package to check signatures", file=sys.stderr)
            return 64
        del args[at:at + 2]
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: verify-ledger.py LEDGER_DIR [--pubkey FILE|HEX] [--json]", file=sys.stderr)
        return 64
    try:
        n, root, cps = verify(args[0])
        check_signers(cps, pinned)
    except NotALedger as e:
        print(json.dumps({"ok": False, "error": str(e)}) if as_json else str(e))
        return 66
    except Corrupt as e:
        print(json.dumps({"format": 1, "ok": False, "seq": e.seq, "error": str(e)})
              if as_json else f"FAIL at seq {e.seq}: {e}")
        return 2
    if as_json:
        for c in cps:
            del c["public_key"]
        print(json.dumps({"format": 1, "events": n, "root": root.hex(), "checkpoints": cps,
                          "key_pinned": pinned is not None, "signatures_checked": Ed25519PublicKey is not None,
                          "ok": True}))
        return 0
    caveat = ("" if pinned is not None or not cps else
              "; no key was pinned, so this proves integrity, not authorship (pass --pubkey)")
    print(f"OK: format 1, {n} events, Merkle root {root.hex()}{caveat}")
    keys = sorted({c["public_key"] for c in cps})
    sig = ("signatures verified" if Ed25519PublicKey else
           "signatures NOT checked (install the 'cryptography' package)")
    print(f"{len(cps)} checkpoint(s) checked" + (f", {sig}" if cps else "")
          + (f"; signing key(s): {', '.join(keys)}" if keys else ""))
    print("jurors' signatures (§3.2) " + ("verified" if Ed25519PublicKey else
          "NOT checked (install the 'cryptography' package)"))
    print("projections and checkpoint projection digests (§5) were not rebuilt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
