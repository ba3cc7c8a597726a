//! The error codes of the OpenSearch API as Trainyard answers them, and the domain error enum.
//!
//! [`ErrorCode`] is the one table that gives every code its wire spelling and HTTP status; every
//! error enum of every crate maps each of its variants onto one of these codes, so a new variant
//! fails to compile until it has been given one.

/// Defines [`ErrorCode`] with, for each code, its wire spelling and HTTP status.
macro_rules! error_codes {
    ($($variant:ident => ($code:literal, $status:literal),)*) => {
        /// Every error code Trainyard answers with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            /// All codes, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears in the `Code` field of a response.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            /// The HTTP status the code is answered with.
            pub const fn http_status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)*
                }
            }
        }
    };
}

error_codes! {
    // Request shape.
    InvalidParameter => ("InvalidParameter", 400),
    MissingParameter => ("MissingParameter", 400),
    RequestBodyTooLarge => ("RequestBodyTooLarge", 413),
    UnsupportedMediaType => ("UnsupportedMediaType", 415),
    RouteNotFound => ("NotFound", 404),
    MethodNotAllowed => ("MethodNotAllowed", 405),
    // Authentication (checked before anything else happens).
    IncompleteSignature => ("IncompleteSignature", 400),
    SignatureDoesNotMatch => ("SignatureDoesNotMatch", 400),
    ContentSha256Mismatch => ("ContentSHA256Mismatch", 400),
    InvalidAccessKeyIdNotFound => ("InvalidAccessKeyId.NotFound", 404),
    InvalidTimeStampExpired => ("InvalidTimeStamp.Expired", 400),
    InvalidTimeStampFormat => ("InvalidTimeStamp.Format", 400),
    SignatureNonceUsed => ("SignatureNonceUsed", 400),
    InvalidVersion => ("InvalidVersion", 400),
    InvalidAction => ("InvalidAction", 400),
    ForbiddenRam => ("Forbidden.RAM", 403),
    InvalidAccessKeyIdInactive => ("InvalidAccessKeyId.Inactive", 400),
    ThrottlingUser => ("Throttling.User", 429),
    // RAM identities and policies (the admin API), spelled as RAM spells them.
    UserNotExist => ("EntityNotExist.User", 404),
    UserAlreadyExist => ("EntityAlreadyExists.User", 409),
    AccessKeyNotExist => ("EntityNotExist.User.AccessKey", 404),
    AccessKeyLimitExceeded => ("LimitExceeded.User.AccessKey", 409),
    PolicyNotExist => ("EntityNotExist.Policy", 404),
    PolicyAlreadyExist => ("EntityAlreadyExists.Policy", 409),
    PolicyInUse => ("DeleteConflict.Policy.User", 409),
    // App groups.
    AppNotFound => ("App.NotFound", 404),
    AppAlreadyExist => ("App.AlreadyExist", 409),
    // Function catalog.
    VersionNotExist => ("Version.NotExist", 404),
    // Instances.
    InstanceNotExist => ("Instance.NotExist", 404),
    InstanceAlreadyExist => ("Instance.AlreadyExist", 409),
    InstanceIsDefault => ("Instance.IsDefault", 409),
    InstanceInUse => ("Instance.InUse", 409),
    // Tasks.
    TaskIsRunning => ("Task.IsRunning", 409),
    TaskNotExist => ("Task.NotExist", 404),
    TaskUnableDelete => ("Task.UnableDelete", 409),
    // Serving.
    ModelNotTrained => ("Model.NotTrained", 404),
    ModelDamaged => ("Model.Damaged", 500),
    // Resources.
    ResourceNotExist => ("Resource.NotExist", 404),
    ResourceAlreadyExist => ("Resource.AlreadyExist", 409),
    ResourceInUse => ("Resource.InUse", 409),
    // Default instance.
    DefaultInstanceNotExist => ("DefaultInstance.NotExist", 404),
    // Document tables of the data plane.
    DataTableNotExist => ("DataTable.NotExist", 404),
    DataTableAlreadyExist => ("DataTable.AlreadyExist", 409),
    // The service itself.
    ServiceUnavailable => ("ServiceUnavailable", 503),
    InternalError => ("InternalError", 500),
}

/// What the domain can refuse, and why. Messages are written for the caller: they name the field
/// or object and the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("The parameter {field} is invalid: {reason}.")]
    InvalidParameter { field: String, reason: String },
    #[error("The input parameter \"{field}\" that is mandatory for processing this request is not supplied.")]
    MissingParameter { field: String },
    #[error("App group \"{identity}\" does not exist.")]
    AppNotFound { identity: String },
    #[error("App group \"{name}\" already exists.")]
    AppAlreadyExist { name: String },
    #[error("{reason}")]
    VersionNotExist { reason: String },
    #[error("Instance \"{instance_name}\" of function {function_name} does not exist.")]
    InstanceNotExist { function_name: String, instance_name: String },
    #[error("Instance \"{instance_name}\" of function {function_name} already exists.")]
    InstanceAlreadyExist { function_name: String, instance_name: String },
    #[error(
        "Instance \"{instance_name}\" is the default {function_name} instance of the app group; set another default (or clear it) first."
    )]
    InstanceIsDefault { function_name: String, instance_name: String },
    #[error(
        "Instance \"{instance_name}\" references resource(s) {resource_names}; remove the reference(s) with UpdateFunctionInstance first."
    )]
    InstanceInUse { instance_name: String, resource_names: String },
    #[error("A task of instance \"{instance_name}\" is running (generation {generation}).")]
    TaskIsRunning { instance_name: String, generation: i64 },
    #[error("Task generation {generation} of instance \"{instance_name}\" does not exist.")]
    TaskNotExist { instance_name: String, generation: String },
    #[error("Task generation {generation} of instance \"{instance_name}\" cannot be deleted: {reason}.")]
    TaskUnableDelete { instance_name: String, generation: i64, reason: String },
    #[error(
        "Instance \"{instance_name}\" of function {function_name} has no trained model yet: run CreateFunctionTask and wait for it to succeed."
    )]
    ModelNotTrained { function_name: String, instance_name: String },
    #[error("Resource \"{resource_name}\" of function {function_name} does not exist.")]
    ResourceNotExist { function_name: String, resource_name: String },
    #[error("Resource \"{resource_name}\" of function {function_name} already exists.")]
    ResourceAlreadyExist { function_name: String, resource_name: String },
    #[error(
        "Resource \"{resource_name}\" is referenced by instance(s) {instance_names}; remove the reference(s) with UpdateFunctionInstance first."
    )]
    ResourceInUse { resource_name: String, instance_names: String },
    #[error("The app group has no default {function_name} instance (default instance not set).")]
    DefaultInstanceNotExist { function_name: String },
    #[error(
        "Table \"{table_name}\" has no primary key declared in this app group; declare it with PUT /v4/openapi/app-groups/{{app}}/data-tables/{table_name} {{\"primaryKey\": \"...\"}}."
    )]
    DataTableNotExist { table_name: String },
    #[error("Table \"{table_name}\" already has the primary key {primary_key}; a table's primary key cannot change.")]
    DataTableAlreadyExist { table_name: String, primary_key: String },
    #[error("You are not authorized to do action {action} on resource {resource}: {reason}.")]
    ForbiddenRam { action: String, resource: String, reason: String },
    #[error("RAM user \"{user_name}\" does not exist.")]
    UserNotExist { user_name: String },
    #[error("RAM user \"{user_name}\" already exists.")]
    UserAlreadyExist { user_name: String },
    #[error("AccessKey \"{access_key_id}\" of {owner} does not exist.")]
    AccessKeyNotExist { owner: String, access_key_id: String },
    #[error(
        "{owner} already has {limit} AccessKeys, the most allowed; delete one first (rotation: create the new key, move callers to it, delete the old one)."
    )]
    AccessKeyLimitExceeded { owner: String, limit: usize },
    #[error("Policy \"{policy_name}\" does not exist.")]
    PolicyNotExist { policy_name: String },
    #[error("Policy \"{policy_name}\" already exists.")]
    PolicyAlreadyExist { policy_name: String },
    #[error("Policy \"{policy_name}\" is attached to RAM user(s) {user_names}; detach it first.")]
    PolicyInUse { policy_name: String, user_names: String },
    #[error("The metadata store is temporarily unavailable: {message}.")]
    StorageUnavailable { message: String },
    #[error("The metadata store failed: {message}.")]
    StorageFailure { message: String },
}

impl CoreError {
    /// The wire code of this error (its HTTP status comes with it).
    pub fn code(&self) -> ErrorCode {
        match self {
            CoreError::InvalidParameter { .. } => ErrorCode::InvalidParameter,
            CoreError::MissingParameter { .. } => ErrorCode::MissingParameter,
            CoreError::AppNotFound { .. } => ErrorCode::AppNotFound,
            CoreError::AppAlreadyExist { .. } => ErrorCode::AppAlreadyExist,
            CoreError::VersionNotExist { .. } => ErrorCode::VersionNotExist,
            CoreError::InstanceNotExist { .. } => ErrorCode::InstanceNotExist,
            CoreError::InstanceAlreadyExist { .. } => ErrorCode::InstanceAlreadyExist,
            CoreError::InstanceIsDefault { .. } => ErrorCode::InstanceIsDefault,
            CoreError::InstanceInUse { .. } => ErrorCode::InstanceInUse,
            CoreError::TaskIsRunning { .. } => ErrorCode::TaskIsRunning,
            CoreError::TaskNotExist { .. } => ErrorCode::TaskNotExist,
            CoreError::TaskUnableDelete { .. } => ErrorCode::TaskUnableDelete,
            CoreError::ModelNotTrained { .. } => ErrorCode::ModelNotTrained,
            CoreError::ResourceNotExist { .. } => ErrorCode::ResourceNotExist,
            CoreError::ResourceAlreadyExist { .. } => ErrorCode::ResourceAlreadyExist,
            CoreError::ResourceInUse { .. } => ErrorCode::ResourceInUse,
            CoreError::DefaultInstanceNotExist { .. } => ErrorCode::DefaultInstanceNotExist,
            CoreError::DataTableNotExist { .. } => ErrorCode::DataTableNotExist,
            CoreError::DataTableAlreadyExist { .. } => ErrorCode::DataTableAlreadyExist,
            CoreError::ForbiddenRam { .. } => ErrorCode::ForbiddenRam,
            CoreError::UserNotExist { .. } => ErrorCode::UserNotExist,
            CoreError::UserAlreadyExist { .. } => ErrorCode::UserAlreadyExist,
            CoreError::AccessKeyNotExist { .. } => ErrorCode::AccessKeyNotExist,
            CoreError::AccessKeyLimitExceeded { .. } => ErrorCode::AccessKeyLimitExceeded,
            CoreError::PolicyNotExist { .. } => ErrorCode::PolicyNotExist,
            CoreError::PolicyAlreadyExist { .. } => ErrorCode::PolicyAlreadyExist,
            CoreError::PolicyInUse { .. } => ErrorCode::PolicyInUse,
            CoreError::StorageUnavailable { .. } => ErrorCode::ServiceUnavailable,
            CoreError::StorageFailure { .. } => ErrorCode::InternalError,
        }
    }

    /// Shorthand for the most common refusal.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CoreError {
        CoreError::InvalidParameter { field: field.into(), reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_spelled_once_and_has_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {}", code.as_str());
            assert!((400..600).contains(&code.http_status()), "{} has status {}", code.as_str(), code.http_status());
        }
    }

    #[test]
    fn codes_named_by_the_spec_have_their_documented_status() {
        assert_eq!((ErrorCode::AppNotFound.as_str(), ErrorCode::AppNotFound.http_status()), ("App.NotFound", 404));
        assert_eq!(ErrorCode::TaskIsRunning.http_status(), 409);
        assert_eq!(ErrorCode::TaskUnableDelete.http_status(), 409);
        assert_eq!(ErrorCode::InstanceAlreadyExist.http_status(), 409);
        assert_eq!(ErrorCode::InvalidAccessKeyIdNotFound.http_status(), 404);
        assert_eq!(ErrorCode::ForbiddenRam.as_str(), "Forbidden.RAM");
        assert_eq!(ErrorCode::ServiceUnavailable.http_status(), 503);
    }
}
