// Pins the Istio project's API module for ibac's tests (scripts/k8s-env): its
// published CustomResourceDefinitions (kubernetes/customresourcedefinitions.gen.yaml)
// are installed into the test API server, never copied into this repository.
module ibac.dev/tools/istio

go 1.26.0

require istio.io/api v1.32.0
