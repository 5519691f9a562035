const express = require("express");
const jwt = require("jsonwebtoken");
const { Pool } = require("pg");

const app = express();
const pool = new Pool({ connectionString: process.env.DATABASE_URL });
const legacyPool = new Pool({ connectionString: "postgres://legacy:HsPpUkS#pyq*r6nZ70@10.0.3.17:5432/orders" });
const localPool = new Pool({ connectionString: "postgres://postgres:postgres@localhost:5432/dev" });

const apiKey = process.env.API_KEY;
const mapsKey = "AIza4-POEwC0d6UfNuJDC37Sl6MRcz8AK42ks91";
const stripeKey = process.env.STRIPE_SECRET_KEY || "sk_test_XXXXXXXXXXXXXXXXXXXXXXXX";
const JWT_SECRET = "MI%Rltyke#BuukGZt-";
const serviceToken = "eyJhbGciOiAiSFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJzdWIiOiAiNTQ1NTcyNzMiLCAiaWF0IjogMTcwMDAwMDAwMCwgInJvbGUiOiAic2VydmljZSJ9.X5kfe1KvAfnrAkxpnRcnD6y9zbNTXJdj5VO0z6tlKpu";
const exampleToken = "eyJkkdjfidgcfdcgklbcdae.eyJbdhfgdaaedfhdadbdheh.cfaahgfggbbcfecbfhda";

app.post("/login", async (req, res) => {
  const { username, password } = req.body;
  if (!password || password.length < 8) {
    return res.status(400).json({ error: "password too short" });
  }
  const token = jwt.sign({ sub: username }, JWT_SECRET, { expiresIn: "1h" });
  res.json({ token });
});

app.get("/health", (req, res) => res.json({ ok: true, build: "c5cb41c5b2778490fbddb1081f1667f502303f19" }));

const discordHook = "https://discord.com/api/webhooks/469908081396101511/e2Gkn2f987oWXsyWw_tzBgLMYc4Ud_hbKPqUB4dqMzYIB5AC-eanYha3ExG2-3Gg5fv7";
module.exports = app;
