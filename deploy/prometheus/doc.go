// Package prometheus holds no code: it is the directory of Strata's
// Prometheus alerting rules (strata.rules.yml), their promtool unit tests
// (strata.rules.test.yml) and an example Alertmanager route
// (alertmanager.yml). Its Go test runs promtool on them, so CI checks the
// rules as it checks the code.
package prometheus
