#!/usr/bin/env python3
"""Independent known-answer values for session-crypto and session-cookie.

Recomputes, outside Rust, what the formats must produce for fixed inputs: HKDF
sub-keys (stdlib hmac), HMAC-SHA256 signed cookies, and XChaCha20-Poly1305 records
and cookies (HChaCha20 written out here from RFC draft-irtf-cfrg-xchacha, then the
`cryptography` package's ChaCha20-Poly1305). The Rust tests pin these outputs.
Needs: python3 with `cryptography`.
"""
import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


def hkdf(secret, info):
    prk = hmac.new(b"session-crypto/v1", secret, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def quarter(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = list(struct.unpack("<4I", b"expand 32-byte k"))
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        quarter(s, 0, 4, 8, 12); quarter(s, 1, 5, 9, 13)
        quarter(s, 2, 6, 10, 14); quarter(s, 3, 7, 11, 15)
        quarter(s, 0, 5, 10, 15); quarter(s, 1, 6, 11, 12)
        quarter(s, 2, 7, 8, 13); quarter(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xchacha_seal(key, nonce24, plaintext, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0" * 4 + nonce24[16:], plaintext, ad)


# Check HChaCha20 against the draft's test vector (section 2.2.1).
assert hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")).hex() == (
    "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")

SECRET = bytes(range(32))
KEY_ID = b"kat-1"
SIGN = hkdf(SECRET, b"session-crypto/v1 cookie signing (HMAC-SHA256)")
COOKIE = hkdf(SECRET, b"session-crypto/v1 cookie encryption (XChaCha20-Poly1305)")
REST = hkdf(SECRET, b"session-crypto/v1 encryption at rest (XChaCha20-Poly1305)")
print("sign subkey   ", SIGN.hex())
print("cookie subkey ", COOKIE.hex())
print("rest subkey   ", REST.hex())

NONCE = bytes(range(0x40, 0x58))
PAYLOAD = b'{"v":1,"created":0,"abs":1,"data":{"user":42}}'
STORAGE_KEY = b"66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
header = bytes([1, len(KEY_ID)]) + KEY_ID
record = header + NONCE + xchacha_seal(REST, NONCE, PAYLOAD, header + STORAGE_KEY)
print("record        ", record.hex())

# Cookies: deadline 2030-01-01T00:00:00Z in Unix milliseconds, big-endian i64.
DEADLINE_MS = 1893456000000
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
sh = bytes([1, len(KEY_ID)]) + KEY_ID + struct.pack(">q", DEADLINE_MS)
signed = sh + PAYLOAD
signed += hmac.new(SIGN, signed, hashlib.sha256).digest()
print("signed cookie ", b64(signed))
eh = bytes([2, len(KEY_ID)]) + KEY_ID + struct.pack(">q", DEADLINE_MS)
enc = eh + NONCE + xchacha_seal(COOKIE, NONCE, PAYLOAD, eh)
print("enc cookie    ", b64(enc))
