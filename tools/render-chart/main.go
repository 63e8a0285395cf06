// render-chart renders a Helm 3 chart the way `helm template` does, for the parts of Helm that
// charts/sealgate uses, without a helm binary (Debian packages none). It is built with Debian's
// Go and Debian's packaged sprig and yaml.v2, in GOPATH mode, offline:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render-chart ./tools/render-chart
//	render-chart [flags] CHART_DIR
//
// What it implements of Helm (and nothing else; the chart keeps to it):
//
//   - .Values: values.yaml, deep-merged with each -f FILE in order, then each --set a.b=c
//     (true/false/null/integers typed as Helm's --set types them, {a,b} a list; everything else
//     a string); numbers of values files are float64, as under helm (through JSON); .Release.Name/.Namespace/.Service/.IsInstall/.IsUpgrade/.Revision;
//     .Chart.Name/.Version/.AppVersion/.Description/.Type; .Capabilities.KubeVersion and
//     .Capabilities.APIVersions.Has (--kube-version, --api-versions; by default a current
//     cluster's, which serves policy/v1); .Template.Name/.BasePath;
//   - the template functions: Go's text/template, sprig's (without env and expandenv, as
//     Helm), and Helm's own include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup
//     (always empty, as under `helm template`);
//   - templates/*.yaml|yml|tpl|txt, `_*` files as partials only (defines, never output),
//     NOTES.txt only with --notes; missing values render as empty (Helm's "<no value>"
//     replacement); output split into documents on `---` lines, documents empty or of
//     comments only dropped, sorted in Helm's install order by kind (stable otherwise);
//     --no-hooks drops documents annotated helm.sh/hook (helm template --no-hooks);
//   - Chart.yaml's kubeVersion constraint, checked against --kube-version.
//
// Output: YAML documents, each after a `# Source: CHART/templates/FILE` line, as helm template
// prints them; or with -o json a JSON array of the documents.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v2"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// defaultAPIVersions is what `helm template` assumes without a cluster: a current Kubernetes
// (policy/v1 served, policy/v1beta1 gone).
var defaultAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1",
	"admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "coordination.k8s.io/v1",
	"networking.k8s.io/v1", "autoscaling/v2", "storage.k8s.io/v1", "events.k8s.io/v1",
}

func main() {
	var valueFiles, sets, apiVersions multiFlag
	name := flag.String("name", "sealgate", "release name (.Release.Name)")
	namespace := flag.String("namespace", "default", "release namespace (.Release.Namespace)")
	kubeVersion := flag.String("kube-version", "v1.33.0", "Kubernetes version (.Capabilities.KubeVersion)")
	output := flag.String("o", "yaml", "output: yaml or json")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	noHooks := flag.Bool("no-hooks", false, "leave out documents annotated helm.sh/hook")
	flag.Var(&valueFiles, "f", "values file merged over values.yaml (repeatable)")
	flag.Var(&sets, "set", "a value: a.b.c=VALUE (repeatable, after the -f files)")
	flag.Var(&apiVersions, "api-versions", "an API version the cluster serves, e.g. policy/v1beta1 (repeatable; replaces the default set)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: render-chart [flags] CHART_DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if len(apiVersions) == 0 {
		apiVersions = defaultAPIVersions
	}
	r := renderer{
		chartDir:    flag.Arg(0),
		release:     *name,
		namespace:   *namespace,
		kubeVersion: *kubeVersion,
		apiVersions: apiVersions,
	}
	out, err := r.run(valueFiles, sets, *notes, *noHooks, *output)
	if err != nil {
		fmt.Fprintf(os.Stderr, "render-chart: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}

type renderer struct {
	chartDir    string
	release     string
	namespace   string
	kubeVersion string
	apiVersions []string
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

// Has says whether the cluster serves an API version (or GROUP/VERSION/KIND).
func (a APIVersions) Has(version string) bool {
	for _, v := range a {
		if v == version || strings.HasPrefix(version, v+"/") {
			return true
		}
	}
	return false
}

type document struct {
	source string
	text   string
	kind   string
	hook   bool
	value  interface{}
}

func (r renderer) run(valueFiles, sets []string, notes, noHooks bool, output string) ([]byte, error) {
	chartMeta, err := readYAMLMap(filepath.Join(r.chartDir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	chartName, _ := chartMeta["name"].(string)
	if chartName == "" {
		return nil, errors.New("Chart.yaml has no name")
	}
	values, err := readValues(filepath.Join(r.chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, file := range valueFiles {
		override, err := readValues(file)
		if err != nil {
			return nil, err
		}
		values = mergeMaps(values, override)
	}
	for _, set := range sets {
		if err := applySet(values, set); err != nil {
			return nil, err
		}
	}

	// Chart.yaml's kubeVersion, checked as helm install and helm template check it.
	if constraint, _ := chartMeta["kubeVersion"].(string); constraint != "" {
		compare, _ := sprig.TxtFuncMap()["semverCompare"].(func(string, string) (bool, error))
		if compare == nil {
			return nil, errors.New("sprig has no semverCompare")
		}
		ok, err := compare(constraint, r.kubeVersion)
		if err != nil {
			return nil, fmt.Errorf("Chart.yaml kubeVersion %q: %v", constraint, err)
		}
		if !ok {
			return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", constraint, r.kubeVersion)
		}
	}
	major, minor := "", ""
	if parts := strings.SplitN(strings.TrimPrefix(r.kubeVersion, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	data := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": r.release, "Namespace": r.namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Chart": map[string]interface{}{
			"Name": chartName, "Version": chartMeta["version"], "AppVersion": chartMeta["appVersion"],
			"Description": chartMeta["description"], "Type": chartMeta["type"],
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": r.kubeVersion, "GitVersion": r.kubeVersion, "Major": major, "Minor": minor,
			},
			"APIVersions": APIVersions(r.apiVersions),
		},
	}

	templatesDir := filepath.Join(r.chartDir, "templates")
	var files []string
	err = filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)

	root := template.New("chart")
	funcs := funcMap(root)
	root.Funcs(funcs).Option("missingkey=zero")
	var renderable []string
	for _, file := range files {
		rel, _ := filepath.Rel(r.chartDir, file)
		tname := path.Join(chartName, filepath.ToSlash(rel))
		text, err := ioutil.ReadFile(file)
		if err != nil {
			return nil, err
		}
		if _, err := root.New(tname).Parse(string(text)); err != nil {
			return nil, err
		}
		base := filepath.Base(file)
		if strings.HasPrefix(base, "_") {
			continue
		}
		if base == "NOTES.txt" {
			if notes {
				renderable = append(renderable, tname)
			}
			continue
		}
		if notes {
			continue
		}
		ext := filepath.Ext(base)
		if ext == ".yaml" || ext == ".yml" || ext == ".tpl" || ext == ".txt" {
			renderable = append(renderable, tname)
		}
	}

	var docs []document
	for _, tname := range renderable {
		data["Template"] = map[string]interface{}{
			"Name": tname, "BasePath": path.Join(chartName, "templates"),
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, tname, data); err != nil {
			return nil, err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notes {
			return []byte(text), nil
		}
		for _, part := range splitDocuments(text) {
			if onlyComments(part) {
				continue
			}
			var value interface{}
			if err := yaml.Unmarshal([]byte(part), &value); err != nil {
				return nil, fmt.Errorf("%s: the rendered YAML does not parse: %v\n%s", tname, err, numbered(part))
			}
			value = normalise(value)
			object, ok := value.(map[string]interface{})
			if !ok {
				return nil, fmt.Errorf("%s: a rendered document is not a mapping:\n%s", tname, numbered(part))
			}
			kind, _ := object["kind"].(string)
			hook := false
			if meta, ok := object["metadata"].(map[string]interface{}); ok {
				if annotations, ok := meta["annotations"].(map[string]interface{}); ok {
					_, hook = annotations["helm.sh/hook"]
				}
			}
			if hook && noHooks {
				continue
			}
			docs = append(docs, document{source: tname, text: part, kind: kind, hook: hook, value: value})
		}
	}
	if notes {
		return nil, errors.New("the chart has no templates/NOTES.txt")
	}
	// Helm applies hooks apart from the release's manifests: they come last, as helm template
	// prints them.
	sort.SliceStable(docs, func(i, j int) bool {
		if docs[i].hook != docs[j].hook {
			return !docs[i].hook
		}
		return installRank(docs[i].kind) < installRank(docs[j].kind)
	})

	if output == "json" {
		values := make([]interface{}, 0, len(docs))
		for _, d := range docs {
			values = append(values, d.value)
		}
		out, err := json.MarshalIndent(values, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(out, '\n'), nil
	}
	if output != "yaml" {
		return nil, fmt.Errorf("-o %s: expected yaml or json", output)
	}
	var out bytes.Buffer
	for _, d := range docs {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", d.source, strings.TrimRight(d.text, "\n"))
	}
	return out.Bytes(), nil
}

// installOrder is Helm's (pkg/releaseutil/kind_sorter.go): kinds not in it go last.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

func installRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

var separator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func splitDocuments(text string) []string {
	var docs []string
	for _, part := range separator.Split(text, -1) {
		if strings.TrimSpace(part) != "" {
			docs = append(docs, part)
		}
	}
	return docs
}

func onlyComments(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			return false
		}
	}
	return true
}

func numbered(text string) string {
	var b strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%4d | %s\n", i+1, line)
	}
	return b.String()
}

func funcMap(root *template.Template) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(name string, data interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("include %q: nested too deeply (a template including itself?)", name)
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		// A fresh set holding the chart's templates (a template already executed cannot be
		// cloned), so the text may include the chart's partials.
		t := template.New("tpl").Funcs(funcs).Option("missingkey=zero")
		for _, defined := range root.Templates() {
			if defined.Tree != nil {
				if _, err := t.AddParseTree(defined.Name(), defined.Tree); err != nil {
					return "", err
				}
			}
		}
		t, err := t.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %v", err)
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil {
			return nil, errors.New(message)
		}
		if s, ok := value.(string); ok && s == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	// Helm's toYaml is sigs.k8s.io/yaml's: through JSON, so a float64 1e+06 from values.yaml
	// is written 1000000.
	funcs["toYaml"] = func(value interface{}) string {
		out, err := toYAML(value)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(out), "\n")
	}
	funcs["fromYaml"] = func(text string) map[string]interface{} {
		var value interface{}
		if err := yaml.Unmarshal([]byte(text), &value); err != nil {
			return map[string]interface{}{"Error": err.Error()}
		}
		if m, ok := normalise(value).(map[string]interface{}); ok {
			return m
		}
		return map[string]interface{}{}
	}
	funcs["toJson"] = func(value interface{}) string {
		out, err := json.Marshal(value)
		if err != nil {
			return ""
		}
		return string(out)
	}
	funcs["fromJson"] = func(text string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return funcs
}

func toYAML(value interface{}) ([]byte, error) {
	j, err := json.Marshal(value)
	if err != nil {
		return nil, err
	}
	var generic interface{}
	if err := yaml.Unmarshal(j, &generic); err != nil {
		return nil, err
	}
	return yaml.Marshal(generic)
}

// readValues reads a values file as Helm does (sigs.k8s.io/yaml: YAML to JSON, then
// encoding/json), so every number is a float64, as the chart's templates see it under helm.
func readValues(file string) (map[string]interface{}, error) {
	m, err := readYAMLMap(file)
	if err != nil {
		return nil, err
	}
	j, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	values := map[string]interface{}{}
	if err := json.Unmarshal(j, &values); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return values, nil
}

func readYAMLMap(file string) (map[string]interface{}, error) {
	text, err := ioutil.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var value interface{}
	if err := yaml.Unmarshal(text, &value); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if value == nil {
		return map[string]interface{}{}, nil
	}
	m, ok := normalise(value).(map[string]interface{})
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", file)
	}
	return m, nil
}

// normalise turns yaml.v2's map[interface{}]interface{} into map[string]interface{}, as Helm's
// values are (sigs.k8s.io/yaml), so that sprig's dict functions and toJson work on them.
func normalise(value interface{}) interface{} {
	switch v := value.(type) {
	case map[interface{}]interface{}:
		m := make(map[string]interface{}, len(v))
		for key, item := range v {
			m[fmt.Sprint(key)] = normalise(item)
		}
		return m
	case map[string]interface{}:
		for key, item := range v {
			v[key] = normalise(item)
		}
		return v
	case []interface{}:
		for i, item := range v {
			v[i] = normalise(item)
		}
		return v
	default:
		return v
	}
}

// mergeMaps merges override into base as Helm merges values files: maps deep, anything else
// replaced; a null in override deletes the key.
func mergeMaps(base, override map[string]interface{}) map[string]interface{} {
	for key, value := range override {
		if value == nil {
			delete(base, key)
			continue
		}
		if overrideMap, ok := value.(map[string]interface{}); ok {
			if baseMap, ok := base[key].(map[string]interface{}); ok {
				base[key] = mergeMaps(baseMap, overrideMap)
				continue
			}
		}
		base[key] = value
	}
	return base
}

// applySet applies one --set a.b.c=VALUE.
func applySet(values map[string]interface{}, set string) error {
	eq := strings.Index(set, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %s: expected KEY=VALUE", set)
	}
	keys := strings.Split(set[:eq], ".")
	raw := set[eq+1:]
	var value interface{}
	if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
		list := []interface{}{}
		inner := raw[1 : len(raw)-1]
		if inner != "" {
			for _, item := range strings.Split(inner, ",") {
				list = append(list, typed(item))
			}
		}
		value = list
	} else {
		value = typed(raw)
	}
	current := values
	for i, key := range keys {
		if key == "" {
			return fmt.Errorf("--set %s: an empty key", set)
		}
		if i == len(keys)-1 {
			if value == nil {
				delete(current, key)
			} else {
				current[key] = value
			}
			return nil
		}
		next, ok := current[key].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			current[key] = next
		}
		current = next
	}
	return nil
}

// typed is Helm's --set typing: true, false, null and integers; else the string.
func typed(raw string) interface{} {
	switch raw {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if n, err := strconv.ParseInt(raw, 10, 64); err == nil && (raw == "0" || !strings.HasPrefix(raw, "0")) {
		return n
	}
	return raw
}
