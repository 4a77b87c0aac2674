#!/usr/bin/env bash
# A Java 17 compiler for the local OpenSearch node (scripts/opensearch-local compiles its small
# launcher, scripts/opensearch/src, with Maven); 00-java.sh brings only the runtime and Maven.
set -euo pipefail
command -v javac >/dev/null && command -v mvn >/dev/null && exit 0
echo "installing a Java 17 JDK and Maven (Debian packages) for the local OpenSearch node"
apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jdk-headless maven
