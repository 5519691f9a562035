"""Django settings for the billing service."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "Tn#3zxeYOjPQ2LZnN8"
DEBUG = os.environ.get("DEBUG", "0") == "1"
ALLOWED_HOSTS = ["billing.internal", "localhost"]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "billing",
        "USER": "billing",
        "PASSWORD": os.environ["DB_PASSWORD"],
        "HOST": os.environ.get("DB_HOST", "localhost"),
    },
    "reporting": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "reports",
        "USER": "reporter",
        "PASSWORD": "iS2!lL7SZhle5V9Bbi",
    },
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
SESSION_COOKIE_NAME = "billing_session"
CSRF_TRUSTED_ORIGINS = ["https://billing.example.com"]

STRIPE_API_KEY = "sk_live_552MjygtLXpgfF62q0w4k46nN1a3CbHysH0lRUvv6guYRUKk"
STRIPE_WEBHOOK_SECRET = os.getenv("STRIPE_WEBHOOK_SECRET")
STRIPE_PUBLISHABLE_KEY = "pk_live_51HaXbCdEfGhIjKlMnOpQrStUv"
SENDGRID_API_KEY = "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"
EMAIL_HOST_PASSWORD = ""
CACHE_URL = "redis://localhost:6379/1"
STATIC_HASH = "e1aaed4bdcceb3d6b67ab645f7bb40e60b67daa1"
