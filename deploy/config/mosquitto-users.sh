#!/bin/sh
# Writes Mosquitto's password file from the environment and installs its ACL: the
# `mosquitto-init` service of docker-compose.yml runs it (eclipse-mosquitto image) before the
# broker starts, at every `docker compose up`, so a password changed in .env takes effect with
# the next start.
#
#   MQTT_EDGE_PASSWORD    user taktline-edge   (edges; the simulator)
#   MQTT_SERVER_PASSWORD  user taktline-server (the server)
#   user healthcheck: a random password, kept in $MOSQUITTO_AUTH_DIR/healthcheck for the
#   broker's health check (it may only read $SYS/broker/uptime, mosquitto.acl)
#
# The password file holds salted hashes (mosquitto_passwd -U), never the passwords. Both files
# end up owned by the broker's user with mode 0600, which Mosquitto asks of them.
set -eu
dir="${MOSQUITTO_AUTH_DIR:-/mosquitto/auth}"
acl="${MOSQUITTO_ACL_SOURCE:-/config/mosquitto.acl}"
: "${MQTT_EDGE_PASSWORD:?is not set: copy .env.example to .env and set it}"
: "${MQTT_SERVER_PASSWORD:?is not set: copy .env.example to .env and set it}"
umask 077
mkdir -p "$dir"
health="$(head -c 24 /dev/urandom | base64)"
printf '%s:%s\n' \
  taktline-edge "$MQTT_EDGE_PASSWORD" \
  taktline-server "$MQTT_SERVER_PASSWORD" \
  healthcheck "$health" >"$dir/passwd.new"
mosquitto_passwd -U "$dir/passwd.new"
printf '%s\n' "$health" >"$dir/healthcheck"
cp "$acl" "$dir/acl.new"
mv "$dir/passwd.new" "$dir/passwd"
mv "$dir/acl.new" "$dir/acl"
if [ "$(id -u)" = 0 ]; then
  # The broker drops root and runs as user mosquitto.
  chown mosquitto:mosquitto "$dir" "$dir/passwd" "$dir/acl" "$dir/healthcheck"
fi
echo "mosquitto: users taktline-edge, taktline-server, healthcheck and the ACL in $dir"
