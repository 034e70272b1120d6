// Package deploy holds what runs ppml on Kubernetes: the Helm chart
// (helm/ppml) and the container image recipes (images/). It has no Go code
// of its own; its test lints and renders the chart offline with the Helm
// library and decodes every rendered object strictly into the Kubernetes
// API types, checking the settings the deployment's security rests on.
// docs/cluster.md is the guide.
package deploy
