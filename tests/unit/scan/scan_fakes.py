"""Fake credentials in real formats, built with valid checksums where a format has one.

Nothing here is a real credential: every value is drawn from a seeded generator.
"""

from __future__ import annotations

import base64
import json
import random
import string

from keysafe.crypto import keyformat
from keysafe.scan.checksums import github_checksum

B62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = string.ascii_letters + string.digits + "-_"
HEX = "0123456789abcdef"


class Fakes:
    """Factories for every provider format; deterministic for a given seed."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)

    def pick(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def github(self, prefix: str = "ghp", valid: bool = True) -> str:
        body = self.pick(B62, 30)
        check = github_checksum(body)
        if not valid:
            check = check[:-1] + ("A" if check[-1] != "A" else "B")
        return f"{prefix}_{body}{check}"

    def github_pat(self) -> str:
        return f"github_pat_{self.pick(B62, 22)}_{self.pick(B62, 59)}"

    def keysafe(self, kind: str = "tok", valid: bool = True) -> str:
        body = f"ks_{kind}_{self.pick(B62, keyformat.RANDOM_LEN)}"
        check = keyformat.checksum(body)
        if not valid:
            check = check[::-1] if check[::-1] != check else "000000"
        return body + check

    def aws_id(self) -> str:
        return "AKIA" + self.pick(string.ascii_uppercase + "234567", 16)

    def aws_secret(self) -> str:
        return self.pick(B64, 40)

    def gcp_key(self) -> str:
        return "AIza" + self.pick(URLSAFE, 35)

    def gcp_oauth(self) -> str:
        return "GOCSPX-" + self.pick(URLSAFE, 28)

    def azure_storage(self) -> str:
        return self.pick(B64, 86) + "=="

    def azure_ad(self) -> str:
        return self.pick(B62, 3) + str(self.rng.randint(0, 9)) + "Q~" + self.pick(B62 + "_~.", 34)

    def gitlab(self) -> str:
        return "glpat-" + self.pick(B62, 20)

    def npm(self) -> str:
        return "npm_" + self.pick(B62, 36)

    def pypi(self) -> str:
        return "pypi-AgEIcHlwaS5vcmc" + self.pick(URLSAFE, 120)

    def stripe(self, mode: str = "live") -> str:
        return f"sk_{mode}_" + self.pick(B62, 48)

    def stripe_webhook(self) -> str:
        return "whsec_" + self.pick(B62, 32)

    def slack_bot(self) -> str:
        digits = string.digits
        return f"xoxb-{self.pick(digits, 12)}-{self.pick(digits, 13)}-{self.pick(B62, 24)}"

    def slack_webhook(self) -> str:
        up = string.ascii_uppercase + string.digits
        return (
            f"https://hooks.slack.com/services/T{self.pick(up, 8)}/B{self.pick(up, 10)}/"
            f"{self.pick(B62, 24)}"
        )

    def discord_webhook(self) -> str:
        return (
            f"https://discord.com/api/webhooks/{self.pick(string.digits, 18)}/"
            f"{self.pick(URLSAFE, 68)}"
        )

    def twilio_key(self) -> str:
        return "SK" + self.pick(HEX, 32)

    def hex32(self) -> str:
        return self.pick(HEX, 32)

    def sendgrid(self) -> str:
        return f"SG.{self.pick(URLSAFE, 22)}.{self.pick(URLSAFE, 43)}"

    def mailgun(self) -> str:
        return "key-" + self.pick(HEX, 32)

    def openai(self) -> str:
        return f"sk-proj-{self.pick(URLSAFE, 40)}T3BlbkFJ{self.pick(URLSAFE, 40)}"

    def anthropic(self) -> str:
        return f"sk-ant-api03-{self.pick(URLSAFE, 93)}AA"

    def huggingface(self) -> str:
        return "hf_" + self.pick(string.ascii_letters, 34)

    def groq(self) -> str:
        return "gsk_" + self.pick(B62, 52)

    def replicate(self) -> str:
        return "r8_" + self.pick(B62, 37)

    def jwt(self) -> str:
        def enc(doc: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

        payload = {"sub": self.pick(string.digits, 8), "iat": 1700000000, "role": "service"}
        return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(payload)}.{self.pick(URLSAFE, 43)}"

    def password(self) -> str:
        return self.pick(string.ascii_letters + string.digits + "!#%&*+-", 18)

    def pem(self, kind: str = "RSA ", lines: int = 12, encrypted_headers: bool = False) -> str:
        body = (
            "\n".join(self.pick(B64, 64) for _ in range(lines)) + "\n" + self.pick(B64, 24) + "=="
        )
        headers = ""
        if encrypted_headers:
            headers = (
                f"Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,{self.pick(HEX, 32).upper()}\n\n"
            )
        return (
            f"-----BEGIN {kind}PRIVATE KEY-----\n{headers}{body}\n-----END {kind}PRIVATE KEY-----"
        )

    def pgp(self) -> str:
        body = "\n".join(self.pick(B64, 64) for _ in range(10))
        return (
            f"-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}\n={self.pick(B64, 4)}\n"
            "-----END PGP PRIVATE KEY BLOCK-----"
        )
