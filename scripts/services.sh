#!/usr/bin/env bash
# Starts the local RabbitMQ and PostgreSQL when they are not running, and
# waits until they accept connections. Idempotent.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  for _ in $(seq 1 "$3"); do
    if port_open "$2"; then echo "$1 is up on 127.0.0.1:$2"; return 0; fi
    sleep 1
  done
  echo "$1 did not come up on 127.0.0.1:$2" >&2
  return 1
}

if ! port_open 5672; then
  echo "starting RabbitMQ"
  rabbitmq-server -detached || true
fi
wait_port RabbitMQ 5672 90
# The AMQP port opens before the broker is fully booted.
rabbitmqctl await_startup >/dev/null

if ! port_open 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi
wait_port PostgreSQL 5432 60
