#!/usr/bin/env bash
# Java and Maven: the local Apache Kafka broker (scripts/kafka-local) and other JVM test servers.
set -euo pipefail
command -v java >/dev/null && command -v mvn >/dev/null && exit 0
echo "installing Java and Maven (Debian packages) for the local test servers"
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven
