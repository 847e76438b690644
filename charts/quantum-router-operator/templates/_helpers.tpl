{{/* Names and labels shared by every template of the chart. */}}

{{- define "qro.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "qro.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "qro.labels" -}}
{{ include "qro.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Rules across values that the schema cannot phrase with a clear message. */}}
{{- define "qro.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.peering.name) -}}
{{- fail "replicaCount > 1 needs peering.name: Kopf keeps one replica active through a KopfPeering" -}}
{{- end -}}
{{- if and (eq .Values.rbac.scope "namespace") (not .Values.watchNamespaces) -}}
{{- fail "rbac.scope=namespace needs watchNamespaces (the namespaces that get a Role)" -}}
{{- end -}}
{{- end -}}

{{- define "qro.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "qro.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Rules on cluster-scoped objects: Kopf discovers what it watches through CRDs and namespaces, and
the operator looks up two optional CRDs by name (CloudNativePG, KubeRay). Read-only. */}}
{{- define "qro.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  resourceNames: [clusters.postgresql.cnpg.io, rayclusters.ray.io]
  verbs: [get]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- if gt (int .Values.replicaCount) 1 }}
- apiGroups: [kopf.dev]
  resources: [clusterkopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}

{{/* Rules in the namespaces the operator manages: each verb is one the operator's code uses.
Children are server-side applied (patch; create for a new object), read for references and
migrations, listed and deleted to prune; no update, no watch. The generated Secret is created once
and never rewritten, referenced Secrets are only read. */}}
{{- define "qro.namespaceRules" -}}
- apiGroups: [quantumrouter.dev]
  resources: [routerdeployments]
  verbs: [get, list, watch]
- apiGroups: [quantumrouter.dev]
  resources: [routerdeployments/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs, cronjobs]
  verbs: [get, list, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, create, patch, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, create, patch, delete]
- apiGroups: [postgresql.cnpg.io]
  resources: [clusters]
  verbs: [get, list, create, patch, delete]
- apiGroups: [ray.io]
  resources: [rayclusters]
  verbs: [get, list, create, patch, delete]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create]
{{- if gt (int .Values.replicaCount) 1 }}
- apiGroups: [kopf.dev]
  resources: [kopfpeerings]
  verbs: [get, list, watch, patch]
{{- end }}
{{- end -}}
