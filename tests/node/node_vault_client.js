// Drives node-vault against a keysafe server and prints what each call answered, as
// JSON, for tests/integration/test_vault_node.py to check. Input from the environment.
"use strict";
const fs = require("fs");

const env = process.env;
const ca = fs.readFileSync(env.KS_CA);
// A fresh options object per client: node-vault keeps its headers in it.
const vault = (token) =>
    require("node-vault")({
        apiVersion: "v1",
        endpoint: env.KS_ADDR,
        token,
        requestOptions: { ca },
    });

async function main() {
    const out = {};
    const root = vault(env.KS_ROOT);
    const folder = env.KS_FOLDER;
    out.health = await root.health();
    out.initialized = await root.initialized();
    out.status = await root.status();
    out.write = await root.write(`secret/data/${folder}/db`, { data: { user: "app", pw: "1" } });
    out.read = await root.read(`secret/data/${folder}/db`);
    out.list = await root.list(`secret/metadata/${folder}`);
    out.mounts = await root.mounts();
    out.created = await root.tokenCreate({ policies: [env.KS_POLICY], ttl: "10m" });
    root.token = env.KS_ROOT; // node-vault switches to the token it just created

    const child = vault(out.created.auth.client_token);
    out.childSelf = await child.tokenLookupSelf();
    out.childRead = await child.read(`secret/data/${folder}/db`);
    try {
        await child.write(`secret/data/${folder}/db`, { data: { pw: "stolen" } });
        out.childWrite = "allowed";
    } catch (err) {
        out.childWrite = err.response ? err.response.statusCode : String(err);
    }
    out.renewed = await child.tokenRenewSelf();
    await child.tokenRevokeSelf();
    try {
        await child.tokenLookupSelf();
        out.afterRevoke = "allowed";
    } catch (err) {
        out.afterRevoke = err.response ? err.response.statusCode : String(err);
    }

    const app = vault(undefined);
    out.login = await app.approleLogin({ role_id: env.KS_ROLE_ID, secret_id: env.KS_SECRET_ID });
    out.appRead = await app.read(`secret/data/${folder}/db`);
    await root.delete(`secret/metadata/${folder}/db`);
    try {
        await root.read(`secret/data/${folder}/db`);
        out.afterDelete = "found";
    } catch (err) {
        out.afterDelete = err.response ? err.response.statusCode : String(err);
    }
    process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
    process.stderr.write(`node-vault failed: ${err.stack || err}\n`);
    if (err.response) process.stderr.write(JSON.stringify(err.response.body) + "\n");
    process.exit(1);
});
