"""What every Reminix token looks like, with nothing of how one is stored or checked
(apikeys/tokens.py makes, hashes and reads them):

    <prefix><30 random base62 chars><6 base62 chars of CRC32 over everything before them>

Here, below every app, so that whatever keeps text a person typed (core.validators'
names and reasons, the forms' "not shown back") can tell a token's secret without its
prefix from a name, by its checksum, as apikeys and api do.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Iterator
from zlib import crc32

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 30  # 30 × log2(62) ≈ 178.6 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so every CRC32 fits

API_KEY_PREFIX = "reminix_sk_"
CLIENT_TOKEN_PREFIX = "reminix_ct_"
PERSONAL_ACCESS_TOKEN_PREFIX = "reminix_pat_"


def base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


def checksum(body: str) -> str:
    """The last CHECKSUM_LENGTH characters of the token that starts with `body`."""
    return base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


# A run of base62 long enough to hold the rest of a token after its prefix.
_RUN = re.compile(f"[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH},}}", re.ASCII)
_DIGIT = {char: value for value, char in enumerate(BASE62)}
_PREFIX_CRCS = tuple(
    zlib.crc32(prefix.encode("ascii"))
    for prefix in (API_KEY_PREFIX, CLIENT_TOKEN_PREFIX, PERSONAL_ACCESS_TOKEN_PREFIX)
)


def holds_token_rest(text: str) -> bool:
    """Whether `text` holds the 36 characters of a token after its prefix, anywhere (within
    a longer run of letters and digits too), known by their checksum: whoever reads them
    knows the prefixes. A made-up string of that shape passes one prefix's checksum once
    in 62**6 (about 5.7e10)."""
    return next(token_rests(text), None) is not None


def token_rests(text: str) -> Iterator[tuple[int, int]]:
    """Where `text` holds a token's 36 characters after its prefix (holds_token_rest): the
    start and end of each, left to right, none overlapping. Every window of every run is
    tried, its checksum's value carried from the last: 4,096 characters took about 5 ms of
    letters and 16 ms of zeros (whose every window has a checksum below 2**32 to compare)
    on a busy 2-core machine."""
    width = RANDOM_LENGTH + CHECKSUM_LENGTH
    highest = 62 ** (CHECKSUM_LENGTH - 1)
    sk, ct, pat = _PREFIX_CRCS
    for run in _RUN.finditer(text):
        raw = run.group().encode("ascii")
        digits = [_DIGIT[char] for char in run.group()]
        checksum = 0
        for digit in digits[RANDOM_LENGTH:width]:
            checksum = checksum * 62 + digit
        free = 0  # where the next rest may start: after the last one found
        for start in range(len(raw) - width + 1):
            if start:  # the window one on: its checksum's first digit out, the next one in
                leaving = digits[start + RANDOM_LENGTH - 1]
                checksum = (checksum - leaving * highest) * 62 + digits[start + width - 1]
            if start < free or checksum > 0xFFFFFFFF:  # inside the last, or no CRC32's
                continue
            random_part = raw[start : start + RANDOM_LENGTH]
            if checksum in (
                crc32(random_part, sk),
                crc32(random_part, ct),
                crc32(random_part, pat),
            ):
                yield run.start() + start, run.start() + start + width
                free = start + width
