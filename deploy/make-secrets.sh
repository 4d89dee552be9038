#!/bin/sh
# Secrets for deploy/compose.yaml, made once on the host (openssl only): deploy/.env (compose
# reads it: every password, the model signing key) and deploy/tls/ (a private CA, the broker's
# key and certificate for SASL_SSL). Existing files are kept: run it again safely. Keep both out
# of version control (.gitignore does). To rotate a value, edit .env and see docs/SECURITY.md.
#
#   sh deploy/make-secrets.sh [DIR]     (DIR: default the directory of this script)
set -eu
DIR=${1:-$(dirname "$0")}
umask 077
mkdir -p "$DIR"
ENV_FILE="$DIR/.env"
if [ ! -f "$ENV_FILE" ]; then
    {
        echo "# made by deploy/make-secrets.sh; hex, so they are safe inside URLs"
        for name in AHUNT_SECRET_KAFKA_ADMIN_PASSWORD AHUNT_SECRET_KAFKA_CONTROLLER_PASSWORD \
            AHUNT_SECRET_KAFKA_SCORER_PASSWORD AHUNT_SECRET_KAFKA_FEEDBACK_PASSWORD \
            AHUNT_SECRET_REDIS_ADMIN_PASSWORD AHUNT_SECRET_REDIS_SCORER_PASSWORD \
            AHUNT_SECRET_REDIS_SCORER_REGISTRY_PASSWORD AHUNT_SECRET_REDIS_FEEDBACK_PASSWORD \
            AHUNT_SECRET_REDIS_RETRAIN_PASSWORD AHUNT_MODEL_SIGNING_KEY GRAFANA_ADMIN_PASSWORD; do
            echo "$name=$(openssl rand -hex 32)"
        done
    } > "$ENV_FILE"
    echo "wrote $ENV_FILE"
fi
TLS="$DIR/tls"
mkdir -p "$TLS"
if [ ! -f "$TLS/kafka.pem" ]; then
    openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=ahunt private CA" \
        -keyout "$TLS/ca.key" -out "$TLS/ca.pem" 2>/dev/null
    openssl req -newkey rsa:3072 -nodes -subj "/CN=kafka" \
        -keyout "$TLS/kafka.key" -out "$TLS/kafka.csr" 2>/dev/null
    printf 'subjectAltName=DNS:kafka,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' \
        > "$TLS/kafka.ext"
    openssl x509 -req -in "$TLS/kafka.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" \
        -CAcreateserial -days 825 -extfile "$TLS/kafka.ext" -out "$TLS/kafka.crt" 2>/dev/null
    # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain, in one file.
    openssl pkcs8 -topk8 -nocrypt -in "$TLS/kafka.key" > "$TLS/kafka.pem"
    cat "$TLS/kafka.crt" "$TLS/ca.pem" >> "$TLS/kafka.pem"
    rm -f "$TLS/kafka.csr" "$TLS/kafka.ext" "$TLS/kafka.key" "$TLS/kafka.crt" "$TLS/ca.srl"
    # Read by the containers' own users (another uid): the directory and the two PEM files
    # (kafka.pem holds the broker's key: keep this host's accounts trusted, or use a secret store).
    chmod 755 "$TLS"
    chmod 644 "$TLS/ca.pem" "$TLS/kafka.pem"
    echo "wrote $TLS/ca.pem (give it to clients) and $TLS/kafka.pem (the broker's; ca.key stays here)"
fi
