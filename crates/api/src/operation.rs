//! The operations Trainyard answers, each with its upstream name, route, RAM action, the query
//! parameters it accepts and the shape of its envelope — the one table the router, the
//! authentication middleware and the envelope writer all read.

use http::Method;

/// How an operation's response envelope is spelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeStyle {
    /// `RequestId, Status, HttpCode, Code, Message, Latency` with an integer `Latency` (the
    /// Function operations; the SDK reads PascalCase only).
    PascalIntegerLatency,
    /// The same with a float `Latency` (the five resource operations, typed float64 upstream).
    PascalFloatLatency,
    /// The v3 data plane: `status, request_id, result, errors` with numeric error codes.
    V3,
    /// The v3 serving routes (hot, hint, popularity, ctr): `request_id, searchtime, result` on
    /// success (`searchtime` in seconds); the v3 `FAIL` envelope on error.
    V3Query,
    /// `requestId, status, httpCode, code, message, latency, result, totalCount` (the app-group
    /// operations, whose SDK models read camelCase).
    Camel,
}

macro_rules! operations {
    ($($variant:ident => ($method:ident, $path:literal, $action:literal, $style:ident, [$($query:literal),*]),)*) => {
        /// Every operation.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($variant,)*
        }

        impl Operation {
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// The upstream operation name (`x-acs-action`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$variant => stringify!($variant),)*
                }
            }

            pub fn method(self) -> Method {
                match self {
                    $(Operation::$variant => Method::$method,)*
                }
            }

            /// The route, in axum's `{param}` syntax.
            pub fn path(self) -> &'static str {
                match self {
                    $(Operation::$variant => $path,)*
                }
            }

            /// The RAM action authorizing the operation.
            pub fn ram_action(self) -> &'static str {
                match self {
                    $(Operation::$variant => $action,)*
                }
            }

            pub fn envelope_style(self) -> EnvelopeStyle {
                match self {
                    $(Operation::$variant => EnvelopeStyle::$style,)*
                }
            }

            /// The query parameters the operation accepts; any other is refused.
            pub fn query_parameters(self) -> &'static [&'static str] {
                match self {
                    $(Operation::$variant => &[$($query),*],)*
                }
            }
        }
    };
}

operations! {
    CreateFunctionInstance => (POST, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances", "opensearch:WriteFunction", PascalIntegerLatency, []),
    GetFunctionInstance => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}", "opensearch:DescribeFunction", PascalIntegerLatency, ["output"]),
    ListFunctionInstances => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances", "opensearch:DescribeFunction", PascalIntegerLatency, ["functionType", "modelType", "output", "pageNumber", "pageSize", "source"]),
    UpdateFunctionInstance => (PUT, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}", "opensearch:WriteFunction", PascalIntegerLatency, []),
    DeleteFunctionInstance => (DELETE, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}", "opensearch:WriteFunction", PascalIntegerLatency, []),
    CreateFunctionTask => (POST, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}/tasks", "opensearch:WriteFunction", PascalIntegerLatency, []),
    GetFunctionTask => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}/tasks/{generation}", "opensearch:DescribeFunction", PascalIntegerLatency, []),
    ListFunctionTasks => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}/tasks", "opensearch:DescribeFunction", PascalIntegerLatency, ["endTime", "pageNumber", "pageSize", "startTime", "status"]),
    // Trainyard's extension: stop a pending or running task.
    CancelFunctionTask => (POST, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}/tasks/{generation}/actions/cancel", "opensearch:WriteFunction", PascalIntegerLatency, []),
    DeleteFunctionTask => (DELETE, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/instances/{instanceName}/tasks/{generation}", "opensearch:WriteFunction", PascalIntegerLatency, []),
    CreateFunctionResource => (POST, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/resources", "opensearch:WriteFunction", PascalFloatLatency, []),
    GetFunctionResource => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/resources/{resourceName}", "opensearch:DescribeFunction", PascalFloatLatency, ["output"]),
    ListFunctionResources => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/resources", "opensearch:DescribeFunction", PascalFloatLatency, ["output", "pageNumber", "pageSize", "resourceType"]),
    UpdateFunctionResource => (PUT, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/resources/{resourceName}", "opensearch:WriteFunction", PascalFloatLatency, []),
    DeleteFunctionResource => (DELETE, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/resources/{resourceName}", "opensearch:WriteFunction", PascalFloatLatency, []),
    GetFunctionCurrentVersion => (GET, "/v4/openapi/functions/{functionName}/current-version", "opensearch:DescribeFunction", PascalIntegerLatency, ["category", "domain", "functionType", "modelType"]),
    GetFunctionVersion => (GET, "/v4/openapi/functions/{functionName}/versions/{versionId}", "opensearch:DescribeFunction", PascalIntegerLatency, []),
    GetFunctionDefaultInstance => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/default-instance", "opensearch:DescribeFunction", PascalIntegerLatency, []),
    UpdateFunctionDefaultInstance => (PUT, "/v4/openapi/app-groups/{appGroupIdentity}/functions/{functionName}/default-instance", "opensearch:WriteFunction", PascalIntegerLatency, []),
    CreateAppGroup => (POST, "/v4/openapi/app-groups", "opensearch:CreateAppGroup", Camel, []),
    ListAppGroups => (GET, "/v4/openapi/app-groups", "opensearch:ListAppGroup", Camel, ["instanceId", "name", "pageNumber", "pageSize", "resourceGroupId", "sortBy", "tags", "type"]),
    DescribeAppGroup => (GET, "/v4/openapi/app-groups/{appGroupIdentity}", "opensearch:DescribeAppGroup", Camel, []),
    ModifyAppGroup => (PUT, "/v4/openapi/app-groups/{appGroupIdentity}", "opensearch:ModifyAppGroup", Camel, ["dryRun"]),
    RemoveAppGroup => (DELETE, "/v4/openapi/app-groups/{appGroupIdentity}", "opensearch:DeleteAppGroup", Camel, []),
    // Trainyard's own: document tables, dataset stats and compaction.
    PutDataTable => (PUT, "/v4/openapi/app-groups/{appGroupIdentity}/data-tables/{tableName}", "opensearch:WriteData", PascalIntegerLatency, []),
    ListDataTables => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/data-tables", "opensearch:DescribeData", PascalIntegerLatency, []),
    DescribeDatasetStats => (GET, "/v4/openapi/app-groups/{appGroupIdentity}/dataset-stats", "opensearch:DescribeData", PascalIntegerLatency, []),
    CompactDataset => (POST, "/v4/openapi/app-groups/{appGroupIdentity}/dataset/actions/compact", "opensearch:WriteData", PascalIntegerLatency, []),
    // The v3 data plane (signed with ACS3 like the rest; the v3 SDKs' own scheme comes later).
    PushDocuments => (POST, "/v3/openapi/apps/{appGroupIdentity}/{tableName}/actions/bulk", "opensearch:WriteData", V3, []),
    PushCollectionData => (POST, "/v3/openapi/app-groups/{appGroupIdentity}/data-collections/{dataCollectionName}/data-collection-type/{dataCollectionType}/actions/bulk", "opensearch:WriteData", V3, []),
    PushQueryLog => (POST, "/v3/openapi/app-groups/{appGroupIdentity}/query-logs/actions/bulk", "opensearch:WriteData", V3, []),
    // Serving of trained models (v3 query plane; popularity is Trainyard's own route).
    QueryHot => (GET, "/v3/openapi/apps/{appGroupIdentity}/actions/hot", "opensearch:SearchApp", V3Query, ["hit", "model_name", "sort_type", "user_id"]),
    QueryHint => (GET, "/v3/openapi/apps/{appGroupIdentity}/actions/hint", "opensearch:SearchApp", V3Query, ["hit", "model_name", "sort_type", "user_id"]),
    QueryPopularity => (GET, "/v3/openapi/apps/{appGroupIdentity}/actions/popularity", "opensearch:SearchApp", V3Query, ["item_ids", "model_name"]),
    // Trainyard's own: click-through-rate scores of up to 1000 items (JSON body).
    QueryCtr => (POST, "/v3/openapi/apps/{appGroupIdentity}/actions/ctr", "opensearch:SearchApp", V3Query, []),
    // Trainyard's RAM admin API (docs/ram.md): RAM's own operation names, actions `ram:<Name>`.
    CreateUser => (POST, "/v4/openapi/ram/users", "ram:CreateUser", PascalIntegerLatency, []),
    ListUsers => (GET, "/v4/openapi/ram/users", "ram:ListUsers", PascalIntegerLatency, []),
    GetUser => (GET, "/v4/openapi/ram/users/{userName}", "ram:GetUser", PascalIntegerLatency, []),
    DeleteUser => (DELETE, "/v4/openapi/ram/users/{userName}", "ram:DeleteUser", PascalIntegerLatency, []),
    CreateAccessKey => (POST, "/v4/openapi/ram/users/{userName}/access-keys", "ram:CreateAccessKey", PascalIntegerLatency, []),
    ListAccessKeys => (GET, "/v4/openapi/ram/users/{userName}/access-keys", "ram:ListAccessKeys", PascalIntegerLatency, []),
    UpdateAccessKey => (PUT, "/v4/openapi/ram/users/{userName}/access-keys/{userAccessKeyId}", "ram:UpdateAccessKey", PascalIntegerLatency, []),
    DeleteAccessKey => (DELETE, "/v4/openapi/ram/users/{userName}/access-keys/{userAccessKeyId}", "ram:DeleteAccessKey", PascalIntegerLatency, []),
    // The root account's own keys (besides its bootstrap key); root only.
    CreateRootAccessKey => (POST, "/v4/openapi/ram/root/access-keys", "ram:CreateRootAccessKey", PascalIntegerLatency, []),
    ListRootAccessKeys => (GET, "/v4/openapi/ram/root/access-keys", "ram:ListRootAccessKeys", PascalIntegerLatency, []),
    UpdateRootAccessKey => (PUT, "/v4/openapi/ram/root/access-keys/{userAccessKeyId}", "ram:UpdateRootAccessKey", PascalIntegerLatency, []),
    DeleteRootAccessKey => (DELETE, "/v4/openapi/ram/root/access-keys/{userAccessKeyId}", "ram:DeleteRootAccessKey", PascalIntegerLatency, []),
    CreatePolicy => (POST, "/v4/openapi/ram/policies", "ram:CreatePolicy", PascalIntegerLatency, []),
    ListPolicies => (GET, "/v4/openapi/ram/policies", "ram:ListPolicies", PascalIntegerLatency, []),
    GetPolicy => (GET, "/v4/openapi/ram/policies/{policyName}", "ram:GetPolicy", PascalIntegerLatency, []),
    DeletePolicy => (DELETE, "/v4/openapi/ram/policies/{policyName}", "ram:DeletePolicy", PascalIntegerLatency, []),
    AttachPolicyToUser => (POST, "/v4/openapi/ram/users/{userName}/policies/{policyName}", "ram:AttachPolicyToUser", PascalIntegerLatency, []),
    DetachPolicyFromUser => (DELETE, "/v4/openapi/ram/users/{userName}/policies/{policyName}", "ram:DetachPolicyFromUser", PascalIntegerLatency, []),
    ListPoliciesForUser => (GET, "/v4/openapi/ram/users/{userName}/policies", "ram:ListPoliciesForUser", PascalIntegerLatency, []),
    SimulatePrincipalPolicy => (POST, "/v4/openapi/ram/users/{userName}/actions/simulate", "ram:SimulatePrincipalPolicy", PascalIntegerLatency, []),
}

impl Operation {
    /// The operation served at (method, route template), if any.
    pub fn from_route(method: &Method, route: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|operation| operation.method() == method && operation.path() == route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_service_colon_name_and_admin_actions_are_ram_names() {
        for operation in Operation::ALL {
            let action = operation.ram_action();
            let (service, name) = action.split_once(':').expect(action);
            assert!(matches!(service, "opensearch" | "ram"), "{operation:?}: {action}");
            assert!(!name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric()), "{action}");
            if service == "ram" {
                assert_eq!(name, operation.name(), "admin actions are named after their operation");
                assert!(operation.path().starts_with("/v4/openapi/ram/"), "{operation:?}");
            }
        }
    }

    #[test]
    fn routes_are_unique_per_method() {
        for (index, operation) in Operation::ALL.iter().enumerate() {
            for other in &Operation::ALL[index + 1..] {
                assert!(
                    !(operation.method() == other.method() && operation.path() == other.path()),
                    "{operation:?} and {other:?}"
                );
            }
        }
    }

    #[test]
    fn the_function_operations_use_the_two_function_actions() {
        let function_operations: Vec<_> =
            Operation::ALL.iter().filter(|operation| operation.path().contains("/functions")).collect();
        // The 18 upstream operations and Trainyard's CancelFunctionTask.
        assert_eq!(function_operations.len(), 19);
        for operation in function_operations {
            assert!(
                matches!(operation.ram_action(), "opensearch:WriteFunction" | "opensearch:DescribeFunction"),
                "{operation:?}"
            );
        }
    }

    #[test]
    fn every_operation_matches_the_spec_inventory() {
        let inventory: serde_json::Value = serde_json::from_str(include_str!("../tests/data/ops.json")).unwrap();
        for entry in inventory["operations"].as_array().unwrap() {
            let name = entry["name"].as_str().unwrap();
            let operation = Operation::ALL
                .iter()
                .find(|operation| operation.name() == name)
                .unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(operation.method().as_str(), entry["method"].as_str().unwrap(), "{name}");
            assert_eq!(operation.path(), entry["path"].as_str().unwrap(), "{name}");
            assert_eq!(operation.ram_action(), entry["action"].as_str().unwrap(), "{name}");
            let mut expected_query: Vec<&str> =
                entry["query"].as_array().unwrap().iter().map(|value| value.as_str().unwrap()).collect();
            expected_query.sort_unstable();
            let mut actual_query = operation.query_parameters().to_vec();
            actual_query.sort_unstable();
            assert_eq!(actual_query, expected_query, "{name}");
        }
    }
}
