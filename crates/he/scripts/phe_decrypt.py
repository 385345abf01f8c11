#!/usr/bin/env python3
"""Decrypt fl-he's ciphertexts with python-paillier.

Usage: python phe_decrypt.py KEYFILE.json CIPHERTEXTS.json

KEYFILE holds "n", "p", "q" as decimal strings (../shared/reference/paillier_phe.json does);
CIPHERTEXTS is what `cargo run -p fl-he --example phe_encrypt` writes. Every entry is decrypted
with phe's own private key and compared with the value fl-he encrypted.
"""
import json
import sys

from phe import paillier, EncryptedNumber


def main():
    key = json.load(open(sys.argv[1]))
    data = json.load(open(sys.argv[2]))
    pub = paillier.PaillierPublicKey(int(key["n"]))
    priv = paillier.PaillierPrivateKey(pub, int(key["p"]), int(key["q"]))
    assert int(data["n"]) == pub.n, "ciphertexts are for another key"
    bad = 0
    for entry in data["values"]:
        enc = EncryptedNumber(pub, int(entry["ciphertext"]), int(entry["exponent"]))
        got = priv.decrypt(enc)
        want = float(entry["value"]) if entry["kind"] == "float" else int(entry["value"])
        ok = got == want
        bad += not ok
        print("%-28s -> %-28r %s" % (entry["value"], got, "ok" if ok else "MISMATCH"))
    s = data.get("sum")
    if s:
        total = EncryptedNumber(pub, int(s["ciphertext"]), int(s["exponent"]))
        got = priv.decrypt(total)
        print("homomorphic sum: %r (fl-he expects %s)" % (got, s["expected"]))
        bad += abs(got - float(s["expected"])) > 1e-9 * max(1.0, abs(float(s["expected"])))
    print("python-paillier decrypted %d values: %s" % (len(data["values"]), "all match" if bad == 0 else "%d mismatches" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
