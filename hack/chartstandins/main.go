// Command chartstandins writes empty stand-ins for the chart's dependencies
// into charts/kshop/charts, for machines that cannot reach the chart
// registries: Helm refuses to install a chart whose dependencies are missing,
// even when every one is switched off, as in the external-infrastructure mode
// (values-local.yaml, values-external.yaml). Nothing of a stand-in renders.
// Before `helm dependency build` on a machine that can fetch the real ones:
//
//	rm -r charts/kshop/charts
//
// Usage: go run ./hack/chartstandins [CHART_DIR]   (default charts/kshop)
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/kshop/kshop/services/platform/kubetest"
)

func main() {
	chart := "charts/kshop"
	if len(os.Args) > 1 {
		chart = os.Args[1]
	}
	if err := kubetest.WriteStandIns(chart); err != nil {
		fmt.Fprintln(os.Stderr, "chartstandins:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "chartstandins: empty stand-ins for the dependencies in %s (install only with every dependency off; rm -r it before helm dependency build)\n", filepath.Join(chart, "charts"))
}
