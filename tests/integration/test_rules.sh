#!/bin/sh
# test_rules.sh — the Prometheus alert rules (systemd/freshrec-alerts.yml):
# promtool checks them, then runs their unit tests
# (systemd/freshrec-alerts.test.yml: which alerts fire, and which must not,
# for given series). Run by `make test` among the test binaries, and by
# `make test-rules`. Exits 1, naming what failed, when either step fails.
cd "$(dirname "$0")/../.." || exit 1
rules=systemd/freshrec-alerts.yml
tests=systemd/freshrec-alerts.test.yml
if ! command -v promtool >/dev/null 2>&1; then
    echo "test_rules: FAILED: promtool not found (Debian package prometheus; make deps)" >&2
    exit 1
fi
if ! promtool check rules "$rules"; then
    echo "test_rules: FAILED: promtool check rules $rules" >&2
    exit 1
fi
if ! promtool test rules "$tests"; then
    echo "test_rules: FAILED: promtool test rules $tests (an alert fired, or did not, against the test's expectation; see above)" >&2
    exit 1
fi
echo "test_rules: $rules checked; every test of $tests passed"
