#!/bin/sh
# The Kafka container's entry point (deploy/compose.yaml): server.properties plus the JAAS lines
# built from the secrets in the environment, a storage formatted once with the ahunt-admin SCRAM
# credential (the first principal; it creates every other through the admin API), then the broker.
# Also writes /tmp/admin.properties for the health check.
set -eu
: "${AHUNT_SECRET_KAFKA_ADMIN_PASSWORD:?}" "${AHUNT_SECRET_KAFKA_CONTROLLER_PASSWORD:?}" "${CLUSTER_ID:?}"
CONFIG=/tmp/server.properties
ADMIN=$AHUNT_SECRET_KAFKA_ADMIN_PASSWORD
CONTROLLER=$AHUNT_SECRET_KAFKA_CONTROLLER_PASSWORD
umask 077
cp /etc/ahunt-kafka/server.properties "$CONFIG"
cat >> "$CONFIG" <<PROPS
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ahunt-admin" password="$ADMIN";
listener.name.external.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="ahunt-controller" password="$CONTROLLER" user_ahunt-controller="$CONTROLLER";
PROPS
cat > /tmp/admin.properties <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ahunt-admin" password="$ADMIN";
ssl.truststore.type=PEM
ssl.truststore.location=/tls/ca.pem
PROPS
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
    /opt/kafka/bin/kafka-storage.sh format -t "$CLUSTER_ID" -c "$CONFIG" \
        --add-scram "SCRAM-SHA-512=[name=ahunt-admin,password=$ADMIN]"
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONFIG"
