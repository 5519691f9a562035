#!/usr/bin/env bash
set -euo pipefail

: "${DEPLOY_TOKEN:?DEPLOY_TOKEN must be set}"
export AWS_PROFILE=prod
REGISTRY_PASSWORD="ZjE2OIEkMo5vsj4#ke"
echo "$REGISTRY_PASSWORD" | docker login registry.acme.io -u deploy --password-stdin

curl -fsS -H "Authorization: token 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" https://api.github.com/repos/acme/billing/deployments
curl -fsS -X POST "https://hooks.slack.com/services/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" -d '{"text":"deployed"}'
git clone https://deploy:oyf0prNAMDP3qWE1%K@git.acme.io/acme/billing.git
TOKEN=$(vault read -field=token secret/deploy)
PASSWORD=$(cat /run/secrets/db_password)
sha256sum release.tar.gz | grep 34eec296a9ee4cc7d6a0c6310e1fcd94d6e5dd09acacb75c5f9494512687364f
git push https://x-access-token:${GITHUB_TOKEN}@github.com/acme/billing.git
