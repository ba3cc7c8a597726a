"""Drives a running Trainyard server through the UNCHANGED official Python SDK
(`alibabacloud-opensearch20171225` 5.2.0) and checks what the SDK parses out of every answer.

Run it through `scripts/sdk-test.sh`, which starts a server and sets:

    TRAINYARD_SDK_ENDPOINT           host:port of the server (plain HTTP)
    TRAINYARD_SDK_ACCESS_KEY_ID      the server's root AccessKey id
    TRAINYARD_SDK_ACCESS_KEY_SECRET  its secret

Covered: the 18 Function operations (instances, tasks, resources, versions, default instance)
and the app-group operations CreateAppGroup, DescribeAppGroup, ListAppGroups, ModifyAppGroup,
RemoveAppGroup, through the default ACS3-HMAC-SHA256 signer, the legacy v2 (HMAC-SHA1) signer
and the aiohttp (`*_async`) transport, plus every error as the SDK exception it surfaces as.

Every name is unique per run, so the suite can run against a server that already has data.
Training tasks stay pending (no task runner exists yet): the suite never waits for one to end.
"""

import asyncio
import itertools
import os
import sys
import time
import uuid

import pytest
from alibabacloud_opensearch20171225 import models
from alibabacloud_opensearch20171225.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils_models import Config

# ---------------------------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------------------------

RUN = uuid.uuid4().hex[:8]
_COUNTER = itertools.count(1)

FUNCTION_OPERATIONS = {
    "create_function_instance",
    "get_function_instance",
    "list_function_instances",
    "update_function_instance",
    "delete_function_instance",
    "create_function_task",
    "get_function_task",
    "list_function_tasks",
    "delete_function_task",
    "create_function_resource",
    "get_function_resource",
    "list_function_resources",
    "update_function_resource",
    "delete_function_resource",
    "get_function_current_version",
    "get_function_version",
    "get_function_default_instance",
    "update_function_default_instance",
}
APP_GROUP_OPERATIONS = {
    "create_app_group",
    "describe_app_group",
    "list_app_groups",
    "modify_app_group",
    "remove_app_group",
}
ALL_OPERATIONS = FUNCTION_OPERATIONS | APP_GROUP_OPERATIONS

# Operation name -> set of transports ("acs3", "v2", "async") it succeeded or failed through.
CALLED = {}


def unique(prefix):
    """A fresh name following ^[A-Za-z][A-Za-z0-9_]{0,29}$ (prefix: a letter + at most 9 more)."""
    assert prefix[0].isalpha() and len(prefix) <= 10
    name = f"{prefix}_{RUN}_{next(_COUNTER)}"
    assert len(name) <= 30, name
    return name


def settings():
    missing = [
        variable
        for variable in (
            "TRAINYARD_SDK_ENDPOINT",
            "TRAINYARD_SDK_ACCESS_KEY_ID",
            "TRAINYARD_SDK_ACCESS_KEY_SECRET",
        )
        if not os.environ.get(variable)
    ]
    if missing:
        raise RuntimeError(
            f"set {', '.join(missing)} (scripts/sdk-test.sh starts a server and sets them)"
        )
    return (
        os.environ["TRAINYARD_SDK_ENDPOINT"],
        os.environ["TRAINYARD_SDK_ACCESS_KEY_ID"],
        os.environ["TRAINYARD_SDK_ACCESS_KEY_SECRET"],
    )


def make_client(access_key_id=None, access_key_secret=None, **extra):
    endpoint, default_id, default_secret = settings()
    config = Config(
        access_key_id=access_key_id if access_key_id is not None else default_id,
        access_key_secret=access_key_secret if access_key_secret is not None else default_secret,
        endpoint=endpoint,
        protocol="http",
        **extra,
    )
    return Client(config)


class Recorded:
    """Wraps an SDK client and records which operations went through which transport; the
    calls themselves go to the SDK unchanged."""

    def __init__(self, client, transport):
        self._client = client
        self._transport = transport

    def __getattr__(self, attribute):
        target = getattr(self._client, attribute)
        operation = attribute[: -len("_async")] if attribute.endswith("_async") else attribute
        if operation not in ALL_OPERATIONS:
            return target
        transport = "async" if attribute.endswith("_async") else self._transport
        CALLED.setdefault(operation, set()).add(transport)
        return target


@pytest.fixture(scope="session")
def client():
    """The default SDK client: ACS3-HMAC-SHA256 signing, `requests` transport."""
    return Recorded(make_client(), "acs3")


@pytest.fixture(scope="session")
def client_v2():
    """The same SDK with the legacy ROA signer (HMAC-SHA1, `Authorization: acs id:sig`)."""
    return Recorded(make_client(signature_algorithm="v2"), "v2")


@pytest.fixture
def app(client):
    """A fresh app group for one test; removed afterwards (if the test did not remove it)."""
    name = unique("app")
    create_app_group(client, name)
    yield name
    try:
        client.remove_app_group(name)
    except ClientException as error:
        if error.code != "App.NotFound":
            raise


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------



def now_ms():
    return int(time.time() * 1000)


def assert_recent_ms(value, started_ms):
    """A server timestamp in epoch milliseconds taken during this test (1 min slack)."""
    assert isinstance(value, int) and not isinstance(value, bool), repr(value)
    assert started_ms - 60_000 <= value <= now_ms() + 60_000, (value, started_ms)


def ok(response, latency=int):
    """Checks the envelope of a successful Function-operation answer as the SDK parsed it.
    `latency` is the type the SDK model declares: int, or float for the five resource ops."""
    assert response.status_code == 200
    body = response.body
    assert body is not None
    assert body.status == "OK", body.to_map()
    assert body.http_code == 200, body.to_map()
    assert body.code == "", body.to_map()
    assert body.message == "", body.to_map()
    assert isinstance(body.request_id, str) and len(body.request_id) >= 16, body.to_map()
    assert isinstance(body.latency, latency) and not isinstance(body.latency, bool), body.to_map()
    assert body.latency >= 0
    return body


def ok_app(response):
    """Checks a successful app-group answer (camelCase envelope: requestId + result)."""
    assert response.status_code == 200
    body = response.body
    assert body is not None
    assert isinstance(body.request_id, str) and len(body.request_id) >= 16, body.to_map()
    assert body.result is not None, body.to_map()
    return body


def expect_error(code, http_status, call, /, *args, contains=(), **kwargs):
    """Runs an SDK call that must fail as ClientException(code, status_code=status); `contains`
    are texts the error message must include, the other keyword arguments go to the call."""
    with pytest.raises(ClientException) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert error.code == code, f"expected {code}, got {error.code}: {error.message}"
    assert error.status_code == http_status, f"{error.code}: expected HTTP {http_status}, got {error.status_code}"
    assert error.request_id not in (None, "", "None"), error.data
    # The error body itself: HTTP status and FAIL repeated in the envelope (PascalCase for the
    # Function operations, camelCase for the app-group ones; the SDK reads either).
    body = error.data
    assert body.get("HttpCode", body.get("httpCode")) == http_status, body
    assert body.get("Status", body.get("status")) == "FAIL", body
    assert body.get("Message", body.get("message")), body
    for text in (contains,) if isinstance(contains, str) else contains:
        assert text in error.message, f"{text!r} not in {error.message!r}"
    return error


async def expect_error_async(code, http_status, awaitable, contains=()):
    """expect_error for an `*_async` call (aiohttp transport)."""
    with pytest.raises(ClientException) as caught:
        await awaitable
    error = caught.value
    assert error.code == code, f"expected {code}, got {error.code}: {error.message}"
    assert error.status_code == http_status, f"{error.code}: expected HTTP {http_status}, got {error.status_code}"
    assert error.request_id not in (None, "", "None"), error.data
    assert error.data.get("HttpCode", error.data.get("httpCode")) == http_status, error.data
    for text in (contains,) if isinstance(contains, str) else contains:
        assert text in error.message, f"{text!r} not in {error.message!r}"
    return error


def create_app_group(client, name, **fields):
    fields.setdefault("type", "standard")
    return client.create_app_group(models.CreateAppGroupRequest(name=name, **fields))


def params(cls, pairs):
    return [cls(name=name, value=value) for name, value in pairs]


def create_instance(client, app, function, name, model_type, create=None, usage=None, **fields):
    request = models.CreateFunctionInstanceRequest(
        instance_name=name,
        model_type=model_type,
        create_parameters=None
        if create is None
        else params(models.CreateFunctionInstanceRequestCreateParameters, create),
        usage_parameters=None
        if usage is None
        else params(models.CreateFunctionInstanceRequestUsageParameters, usage),
        **fields,
    )
    return client.create_function_instance(app, function, request)


def get_instance(client, app, function, name, output=None):
    return client.get_function_instance(
        app, function, name, models.GetFunctionInstanceRequest(output=output)
    )


def list_instances(client, app, function, **query):
    return client.list_function_instances(
        app, function, models.ListFunctionInstancesRequest(**query)
    )


def update_instance(client, app, function, name, create=None, usage=None, **fields):
    request = models.UpdateFunctionInstanceRequest(
        create_parameters=None
        if create is None
        else params(models.UpdateFunctionInstanceRequestCreateParameters, create),
        usage_parameters=None
        if usage is None
        else params(models.UpdateFunctionInstanceRequestUsageParameters, usage),
        **fields,
    )
    return client.update_function_instance(app, function, name, request)


def list_tasks(client, app, function, name, **query):
    return client.list_function_tasks(app, function, name, models.ListFunctionTasksRequest(**query))


def raw_file(client, app, function, name, content, description=None):
    return client.create_function_resource(
        app,
        function,
        models.CreateFunctionResourceRequest(
            resource_name=name,
            resource_type="raw_file",
            description=description,
            data=models.CreateFunctionResourceRequestData(content=content),
        ),
    )


def generator(cls_prefix, kind, features, output):
    """A generator of the Create* or Update* request models (cls_prefix names which)."""
    gen_cls = getattr(models, f"{cls_prefix}RequestDataGenerators")
    input_cls = getattr(models, f"{cls_prefix}RequestDataGeneratorsInput")
    feature_cls = getattr(models, f"{cls_prefix}RequestDataGeneratorsInputFeatures")
    return gen_cls(
        generator=kind,
        input=input_cls(features=[feature_cls(name=name, type=kind_) for name, kind_ in features]),
        output=output,
    )


def feature_generator(client, app, function, name, generators, description=None, content=None):
    return client.create_function_resource(
        app,
        function,
        models.CreateFunctionResourceRequest(
            resource_name=name,
            resource_type="feature_generator",
            description=description,
            data=models.CreateFunctionResourceRequestData(content=content, generators=generators),
        ),
    )


def get_resource(client, app, function, name, output=None):
    return client.get_function_resource(
        app, function, name, models.GetFunctionResourceRequest(output=output)
    )


def list_resources(client, app, function, **query):
    return client.list_function_resources(
        app, function, models.ListFunctionResourcesRequest(**query)
    )


def set_default(client, app, function, instance_name):
    return client.update_function_default_instance(
        app, function, models.UpdateFunctionDefaultInstanceRequest(instance_name=instance_name)
    )


def names_of(items):
    return [item.instance_name for item in items]


def pairs_of(parameters):
    return [(parameter.name, parameter.value) for parameter in parameters]


# ---------------------------------------------------------------------------------------------
# App groups
# ---------------------------------------------------------------------------------------------


def test_app_group_lifecycle(client):
    started = time.time()
    name = unique("grp")
    tag = models.CreateAppGroupRequestTags(key="suite", value=RUN)
    quota = models.CreateAppGroupRequestQuota(doc_size=5, compute_resource=20, spec="opensearch.share.common")
    created = ok_app(
        create_app_group(
            client, name, type="enhanced", charge_type="POSTPAY", quota=quota, tags=[tag],
            resource_group_id="rg-" + RUN,
        )
    ).result
    assert created.name == name
    assert created.type == "enhanced"
    assert created.charge_type == "POSTPAY"
    assert created.status == "normal"
    assert created.id.isdigit(), created.id
    assert created.instance_id, created.instance_id
    assert created.quota.doc_size == 5
    assert created.quota.compute_resource == 20
    assert created.quota.spec == "opensearch.share.common"
    assert int(started) - 60 <= created.created <= time.time() + 60  # epoch seconds
    app_id = created.id

    described = ok_app(client.describe_app_group(name)).result
    assert described.name == name and described.id == app_id
    assert described.type == "enhanced"
    assert described.resource_group_id == "rg-" + RUN
    assert described.instance_id == created.instance_id
    assert [(t.key, t.value) for t in described.tags] == [("suite", RUN)]
    # The numeric id resolves too.
    assert ok_app(client.describe_app_group(app_id)).result.name == name

    listed = ok_app(client.list_app_groups(models.ListAppGroupsRequest(name=name)))
    assert listed.total_count == 1
    assert [group.name for group in listed.result] == [name]
    assert listed.result[0].id == app_id

    modified = ok_app(
        client.modify_app_group(
            name, models.ModifyAppGroupRequest(description="sdk suite app", domain="ecommerce")
        )
    ).result
    assert modified.name == name
    assert modified.description == "sdk suite app"
    assert modified.domain == "ecommerce"
    described = ok_app(client.describe_app_group(name)).result
    assert described.description == "sdk suite app"
    assert described.domain == "ecommerce"

    removed = ok_app(client.remove_app_group(name)).result
    assert removed == [int(app_id)]
    expect_error("App.NotFound", 404, client.describe_app_group, name)
    expect_error("App.NotFound", 404, client.describe_app_group, app_id)
    assert ok_app(client.list_app_groups(models.ListAppGroupsRequest(name=name))).total_count == 0


# The Python SDK builds query values with str(), so dry_run=True/False goes on the wire as
# dryRun=True / dryRun=False; the server reads booleans case-insensitively.
def test_modify_app_group_dry_run(client, app):
    # dryRun validates without changing anything.
    dry = ok_app(
        client.modify_app_group(app, models.ModifyAppGroupRequest(description="not applied", dry_run=True))
    ).result
    assert dry.name == app
    assert dry.description == ""
    assert ok_app(client.describe_app_group(app)).result.description == ""
    # An invalid change is still refused in a dry run.
    expect_error(
        "InvalidParameter", 400, client.modify_app_group, app,
        models.ModifyAppGroupRequest(domain="mars", dry_run=True), contains="domain",
    )


def test_modify_app_group_dry_run_false(client, app):
    modified = ok_app(
        client.modify_app_group(app, models.ModifyAppGroupRequest(description="applied", dry_run=False))
    ).result
    assert modified.description == "applied"
    assert ok_app(client.describe_app_group(app)).result.description == "applied"


def test_app_group_errors(client, app):
    expect_error("App.AlreadyExist", 409, create_app_group, client, app, contains=app)
    for bad in ("9starts_with_digit", "has-dash", "x" * 31, "_under"):
        expect_error("InvalidParameter", 400, create_app_group, client, bad, contains="name")
    expect_error("MissingParameter", 400, create_app_group, client, "")
    expect_error("InvalidParameter", 400, create_app_group, client, unique("grp"), type="huge", contains="type")
    missing = unique("nope")
    expect_error("App.NotFound", 404, client.describe_app_group, missing, contains=missing)
    expect_error(
        "App.NotFound", 404, client.modify_app_group, missing, models.ModifyAppGroupRequest(description="x")
    )
    expect_error("App.NotFound", 404, client.remove_app_group, missing)
    expect_error(
        "InvalidParameter",
        400,
        client.modify_app_group,
        app,
        models.ModifyAppGroupRequest(current_version="v2"),
        contains="currentVersion",
    )
    expect_error(
        "InvalidParameter",
        400,
        client.modify_app_group,
        app,
        models.ModifyAppGroupRequest(domain="mars"),
        contains="domain",
    )


def test_list_app_groups_paging_and_filters(client):
    tag_value = unique("tag")
    tags = [models.CreateAppGroupRequestTags(key="paging", value=tag_value)]
    names = [unique("pg") for _ in range(3)]
    try:
        create_app_group(client, names[0], type="standard", tags=tags)
        create_app_group(client, names[1], type="enhanced", tags=tags, resource_group_id="rg-" + tag_value)
        create_app_group(client, names[2], type="enhanced", tags=tags, resource_group_id="rg-" + tag_value)
        tag_filter = [models.ListAppGroupsRequestTags(key="paging", value=tag_value)]

        everything = ok_app(client.list_app_groups(models.ListAppGroupsRequest(tags=tag_filter)))
        assert everything.total_count == 3
        assert sorted(group.name for group in everything.result) == sorted(names)

        first = ok_app(client.list_app_groups(models.ListAppGroupsRequest(tags=tag_filter, page_size=2)))
        second = ok_app(
            client.list_app_groups(models.ListAppGroupsRequest(tags=tag_filter, page_size=2, page_number=2))
        )
        assert first.total_count == 3 and second.total_count == 3
        assert len(first.result) == 2 and len(second.result) == 1
        assert sorted(g.name for g in first.result + second.result) == sorted(names)

        enhanced = ok_app(client.list_app_groups(models.ListAppGroupsRequest(tags=tag_filter, type="enhanced")))
        assert enhanced.total_count == 2
        assert sorted(g.name for g in enhanced.result) == sorted(names[1:])

        # sortBy 0 = newest created first, 1 = most recently modified first.
        def by_group(sort_by):
            return ok_app(
                client.list_app_groups(
                    models.ListAppGroupsRequest(resource_group_id="rg-" + tag_value, sort_by=sort_by)
                )
            )

        assert by_group(0).total_count == 2
        assert [g.name for g in by_group(0).result] == [names[2], names[1]]
        time.sleep(0.01)
        ok_app(client.modify_app_group(names[1], models.ModifyAppGroupRequest(description="touched")))
        assert [g.name for g in by_group(1).result] == [names[1], names[2]]
        assert [g.name for g in by_group(0).result] == [names[2], names[1]]
        expect_error("InvalidParameter", 400, client.list_app_groups, models.ListAppGroupsRequest(sort_by=7),
                     contains="sortBy")
        instance_id = everything.result[0].instance_id
        by_instance = ok_app(client.list_app_groups(models.ListAppGroupsRequest(instance_id=instance_id)))
        assert by_instance.total_count == 1 and by_instance.result[0].instance_id == instance_id
        assert ok_app(client.list_app_groups(models.ListAppGroupsRequest(instance_id="nope"))).total_count == 0

        other_tag = [models.ListAppGroupsRequestTags(key="paging", value=tag_value + "x")]
        assert ok_app(client.list_app_groups(models.ListAppGroupsRequest(tags=other_tag))).total_count == 0

        expect_error(
            "InvalidParameter", 400, client.list_app_groups, models.ListAppGroupsRequest(page_size=101),
            contains="pageSize",
        )
        expect_error(
            "InvalidParameter", 400, client.list_app_groups, models.ListAppGroupsRequest(page_number=0),
            contains="pageNumber",
        )
        expect_error(
            "InvalidParameter", 400, client.list_app_groups, models.ListAppGroupsRequest(type="huge")
        )
    finally:
        for name in names:
            try:
                client.remove_app_group(name)
            except ClientException:
                pass


# ---------------------------------------------------------------------------------------------
# Function catalog (GetFunctionCurrentVersion, GetFunctionVersion)
# ---------------------------------------------------------------------------------------------

CATALOG = [
    ("ctr", "tf_checkpoint", 101),
    ("pop", "pop", 201),
    ("category", "offline_inference", 301),
    ("hot", "offline_inference", 401),
    ("hot", "near_realtime", 402),
    ("hint", "offline_inference", 501),
    ("hint", "near_realtime", 502),
    ("suggest", "offline_inference", 601),
    ("analyzer", "text", 701),
    ("termweight", "tf_checkpoint", 801),
    ("synonym", "offline_inference", 901),
]


@pytest.mark.parametrize("function,model_type,version_id", CATALOG)
def test_current_version_and_version_by_id(client, function, model_type, version_id):
    current = ok(
        client.get_function_current_version(
            function, models.GetFunctionCurrentVersionRequest(model_type=model_type)
        )
    ).result
    assert current.function_name == function
    assert current.model_type == model_type
    assert current.function_type == "PAAS"
    assert current.version_id == version_id
    assert current.version_name == "v1"
    config = current.version_config
    assert config is not None
    for spec in config.create_parameters + config.usage_parameters:
        assert spec.name and spec.required in ("true", "false"), spec.to_map()
    assert config.depends, "every version names what training depends on"
    for dependency in config.depends:
        assert dependency.condition and dependency.dependency and dependency.description

    by_id = ok(client.get_function_version(function, str(version_id))).result
    assert by_id.to_map() == current.to_map()

    # The general edition answers for domain "general" as for the empty domain.
    general = ok(
        client.get_function_current_version(
            function,
            models.GetFunctionCurrentVersionRequest(model_type=model_type, domain="general", function_type="PAAS"),
        )
    ).result
    assert general.version_id == version_id


def spec_map(specs):
    return {spec.name: spec.required for spec in specs}


def test_version_parameters_and_required_flags(client):
    ctr = ok(client.get_function_version("ctr", "101")).result.version_config
    ctr_create = spec_map(ctr.create_parameters)
    assert ctr_create["id_field"] == "false"
    assert ctr_create["title_field"] == "false"
    assert ctr_create["epochs"] == "false"
    assert "param1" not in ctr_create
    assert ctr.usage_parameters == []

    category = ok(client.get_function_version("category", "301")).result.version_config
    assert category.create_parameters[0].name == "category_id_field"
    assert category.create_parameters[0].required == "true"
    category_create = spec_map(category.create_parameters)
    assert category_create["category_name_field"] == "true"
    assert category_create["title_field"] == "true"
    assert category_create["mode"] == "false"

    hot = ok(client.get_function_version("hot", "401")).result.version_config
    assert spec_map(hot.usage_parameters) == {"allow_dict_id": "false", "deny_dict_id": "false"}
    assert set(spec_map(hot.create_parameters)) == {"filter", "window_days", "top_n"}
    assert hot.depends[0].dependency == "query_log"

    suggest = ok(client.get_function_version("suggest", "601")).result.version_config
    assert spec_map(suggest.create_parameters)["source_fields"] == "true"

    for function, version_id in (("analyzer", "701"), ("termweight", "801"), ("synonym", "901")):
        config = ok(client.get_function_version(function, version_id)).result.version_config
        assert spec_map(config.create_parameters)["training_fields"] == "true", function


def test_version_errors(client):
    def current(function, **query):
        return client.get_function_current_version(function, models.GetFunctionCurrentVersionRequest(**query))

    expect_error("Version.NotExist", 404, client.get_function_version, "ctr", "401", contains=("ot exist", "401"))
    expect_error("Version.NotExist", 404, client.get_function_version, "hot", "999")
    expect_error("InvalidParameter", 400, client.get_function_version, "hot", "abc", contains="versionId")
    expect_error("InvalidParameter", 400, client.get_function_version, "rank", "101", contains="functionName")
    expect_error("Version.NotExist", 404, current, "ctr", model_type="pop", contains=("ot exist", "tf_checkpoint"))
    expect_error("Version.NotExist", 404, current, "ctr", model_type="tf_checkpoint", domain="ecommerce")
    expect_error("Version.NotExist", 404, current, "ctr", model_type="tf_checkpoint", function_type="SAAS")
    expect_error("Version.NotExist", 404, current, "ctr", model_type="tf_checkpoint", category="question")
    expect_error("MissingParameter", 400, current, "ctr", contains="modelType")
    expect_error("InvalidParameter", 400, current, "rank", model_type="tf_checkpoint", contains="functionName")


# ---------------------------------------------------------------------------------------------
# Instances
# ---------------------------------------------------------------------------------------------


def test_instance_create_get_update_delete(client, app):
    started = now_ms()
    name = unique("ctr")
    body = ok(
        create_instance(
            client,
            app,
            "ctr",
            name,
            "tf_checkpoint",
            create=[("id_field", "item_id"), ("title_field", "title"), ("epochs", "5")],
            usage=[],
            function_type="PAAS",
            description="ctr via sdk",
            cron="0 0 ? * 0,1,3,5",
        )
    )
    assert body.to_map().keys() >= {"RequestId", "Status", "HttpCode", "Latency"}

    result = ok(get_instance(client, app, "ctr", name)).result  # output defaults to normal
    assert result.instance_name == name
    assert result.function_name == "ctr"
    assert result.model_type == "tf_checkpoint"
    assert result.function_type == "PAAS"
    assert result.source == "user"
    assert result.status == "unavailable"
    assert result.version_id == 101
    assert result.description == "ctr via sdk"
    assert result.cron == "0 0 ? * 0,1,3,5"
    assert pairs_of(result.create_parameters) == [("id_field", "item_id"), ("title_field", "title"), ("epochs", "5")]
    assert result.usage_parameters == []
    assert isinstance(result.extend_info, str)
    assert result.belongs.category == "general" and result.belongs.domain == "general"
    assert_recent_ms(result.create_time, started)
    assert result.task is None  # only with output=detail

    simple = ok(get_instance(client, app, "ctr", name, output="simple")).result
    assert simple.instance_name == name and simple.status == "unavailable" and simple.version_id == 101
    # The SDK turns a missing list into []; missing strings stay None.
    assert simple.create_parameters == [] and simple.usage_parameters == []
    assert simple.cron is None and simple.description is None and simple.task is None

    detail = ok(get_instance(client, app, "ctr", name, output="detail")).result
    assert detail.task is not None
    assert detail.task.dag_status == "untrained"
    assert detail.task.last_run_time == 0
    assert pairs_of(detail.create_parameters) == pairs_of(result.create_parameters)

    expect_error(
        "InvalidParameter", 400, get_instance, client, app, "ctr", name, "everything", contains="output"
    )

    # A given list replaces the stored one; fields not given stay.
    ok(update_instance(client, app, "ctr", name, create=[("id_field", "pk"), ("model", "ftrl_lr")]))
    updated = ok(get_instance(client, app, "ctr", name)).result
    assert pairs_of(updated.create_parameters) == [("id_field", "pk"), ("model", "ftrl_lr")]
    assert updated.description == "ctr via sdk"
    assert updated.cron == "0 0 ? * 0,1,3,5"

    ok(update_instance(client, app, "ctr", name, description="second", cron="30 3 * * *"))
    updated = ok(get_instance(client, app, "ctr", name)).result
    assert updated.description == "second" and updated.cron == "30 3 * * *"
    assert pairs_of(updated.create_parameters) == [("id_field", "pk"), ("model", "ftrl_lr")]

    ok(update_instance(client, app, "ctr", name, cron=""))  # "" disables periodic training
    assert ok(get_instance(client, app, "ctr", name)).result.cron == ""

    # Updates are validated like creation.
    expect_error(
        "InvalidParameter", 400, update_instance, client, app, "ctr", name, usage=[("top_n", "100")],
        contains="usageParameters.top_n",
    )
    expect_error(
        "InvalidParameter", 400, update_instance, client, app, "ctr", name, create=[("epochs", "0")],
        contains="createParameters.epochs",
    )
    expect_error("InvalidParameter", 400, update_instance, client, app, "ctr", name, cron="99 * * * *", contains="cron")
    assert pairs_of(ok(get_instance(client, app, "ctr", name)).result.create_parameters) == [
        ("id_field", "pk"),
        ("model", "ftrl_lr"),
    ]

    ok(client.delete_function_instance(app, "ctr", name))
    expect_error("Instance.NotExist", 404, get_instance, client, app, "ctr", name, contains=name)
    expect_error("Instance.NotExist", 404, client.delete_function_instance, app, "ctr", name)
    # The name is free again.
    ok(create_instance(client, app, "ctr", name, "tf_checkpoint"))
    assert ok(get_instance(client, app, "ctr", name)).result.create_parameters == []


def test_instance_errors(client, app):
    name = unique("ctr")
    ok(create_instance(client, app, "ctr", name, "tf_checkpoint"))
    expect_error(
        "Instance.AlreadyExist", 409, create_instance, client, app, "ctr", name, "tf_checkpoint", contains=name
    )
    # The same name under another function is another instance.
    ok(create_instance(client, app, "pop", name, "pop"))

    for bad in ("1abc", "has-dash", "x" * 31, "_lead", "sp ace"):
        expect_error(
            "InvalidParameter", 400, create_instance, client, app, "ctr", bad, "tf_checkpoint", contains="instanceName"
        )
    # Exactly 30 characters is fine.
    thirty = ("L" + RUN + "_" + "x" * 30)[:30]
    ok(create_instance(client, app, "ctr", thirty, "tf_checkpoint"))

    expect_error("MissingParameter", 400, create_instance, client, app, "ctr", None, "tf_checkpoint", contains="instanceName")
    expect_error("MissingParameter", 400, create_instance, client, app, "ctr", unique("i"), None, contains="modelType")
    expect_error("Version.NotExist", 404, create_instance, client, app, "ctr", unique("i"), "pop")
    expect_error("InvalidParameter", 400, create_instance, client, app, "rank", unique("i"), "pop", contains="functionName")
    expect_error("App.NotFound", 404, create_instance, client, unique("noapp"), "ctr", unique("i"), "tf_checkpoint")

    def create_with(function, model_type, create=None, usage=None, **fields):
        return create_instance(client, app, function, unique("i"), model_type, create=create, usage=usage, **fields)

    expect_error(
        "InvalidParameter", 400, create_with, "ctr", "tf_checkpoint", [("param1", "value1")],
        contains="createParameters.param1",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "category", "offline_inference", [("title_field", "title")],
        contains="createParameters.category_id_field",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "category", "offline_inference",
        [("category_id_field", ""), ("category_name_field", "cn"), ("title_field", "t")],
        contains="createParameters.category_id_field",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "ctr", "tf_checkpoint", [("epochs", "0")],
        contains="createParameters.epochs",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "ctr", "tf_checkpoint", [("model", "fm"), ("model", "fm")],
        contains="createParameters.model",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "ctr", "tf_checkpoint", None, [("use_param1", "x")],
        contains="usageParameters.use_param1",
    )
    expect_error(
        "InvalidParameter", 400, create_with, "hot", "offline_inference", [("filter", "biz_type != 1")],
        contains="createParameters.filter",
    )
    expect_error("InvalidParameter", 400, create_with, "ctr", "tf_checkpoint", cron="not a cron", contains="cron")
    # A valid one of each kind still works.
    category = unique("cat")
    ok(create_instance(client, app, "category", category, "offline_inference",
                       create=[("category_id_field", "cid"), ("category_name_field", "cname"), ("title_field", "t")]))
    # An update replaces the list, so it must carry the required parameters too.
    expect_error(
        "InvalidParameter", 400, update_instance, client, app, "category", category, create=[("mode", "item")],
        contains="createParameters.category_id_field",
    )
    assert len(ok(get_instance(client, app, "category", category)).result.create_parameters) == 3
    ok(create_with("hot", "offline_inference", [("filter", "biz_id != 1"), ("top_n", "50")], cron="12 4 ? * 1,2,3,4,5,6,0"))

    missing = unique("gone")
    expect_error("Instance.NotExist", 404, get_instance, client, app, "ctr", missing, contains=missing)
    expect_error("Instance.NotExist", 404, update_instance, client, app, "ctr", missing, description="x")
    expect_error("Instance.NotExist", 404, client.delete_function_instance, app, "ctr", missing)
    expect_error("Instance.NotExist", 404, get_instance, client, app, "hot", name)  # other function
    expect_error("InvalidParameter", 400, get_instance, client, app, "ctr", "bad-name", contains="instanceName")
    expect_error("App.NotFound", 404, get_instance, client, unique("noapp"), "ctr", name)


def test_list_function_instances_paging_and_filters(client, app):
    created = []
    for index in range(12):
        name = unique("pop")
        ok(create_instance(client, app, "pop", name, "pop", create=[("half_life_days", str(index + 1))]))
        created.append(name)
    ok(create_instance(client, app, "ctr", unique("ctr"), "tf_checkpoint"))

    default_page = ok(list_instances(client, app, "pop"))
    assert default_page.total_count == 12
    assert len(default_page.result) == 10, "pageSize defaults to 10"
    # Newest first.
    assert names_of(default_page.result) == list(reversed(created))[:10]
    item = default_page.result[0]
    assert item.function_name == "pop" and item.model_type == "pop" and item.status == "unavailable"
    assert item.version_id == 201 and item.source == "user" and item.function_type == "PAAS"
    assert pairs_of(item.create_parameters) == [("half_life_days", "12")]  # output defaults to normal

    second = ok(list_instances(client, app, "pop", page_number=2))
    assert second.total_count == 12 and len(second.result) == 2
    assert set(names_of(default_page.result + second.result)) == set(created)

    pages = [ok(list_instances(client, app, "pop", page_size=5, page_number=n)).result for n in (1, 2, 3, 4)]
    assert [len(page) for page in pages] == [5, 5, 2, 0]
    assert sorted(sum((names_of(page) for page in pages), [])) == sorted(created)

    assert len(ok(list_instances(client, app, "pop", page_size=100)).result) == 12
    assert ok(list_instances(client, app, "pop", model_type="pop")).total_count == 12
    assert ok(list_instances(client, app, "pop", model_type="tf_checkpoint")).total_count == 0
    assert ok(list_instances(client, app, "pop", function_type="PAAS")).total_count == 12
    assert ok(list_instances(client, app, "pop", source="builtin")).total_count == 0
    assert ok(list_instances(client, app, "pop", source="all")).total_count == 12
    assert ok(list_instances(client, app, "pop", source="user")).total_count == 12
    assert ok(list_instances(client, app, "ctr")).total_count == 1
    assert ok(list_instances(client, app, "hot")).total_count == 0

    simple = ok(list_instances(client, app, "pop", output="simple", page_size=1))
    assert simple.total_count == 12 and len(simple.result) == 1
    assert simple.result[0].instance_name == created[-1]
    assert simple.result[0].create_parameters == [] and simple.result[0].cron is None

    expect_error("InvalidParameter", 400, list_instances, client, app, "pop", page_size=101, contains="pageSize")
    expect_error("InvalidParameter", 400, list_instances, client, app, "pop", page_size=0, contains="pageSize")
    expect_error("InvalidParameter", 400, list_instances, client, app, "pop", page_number=0, contains="pageNumber")
    expect_error("InvalidParameter", 400, list_instances, client, app, "pop", source="mine", contains="source")
    expect_error("App.NotFound", 404, list_instances, client, unique("noapp"), "pop")


# ---------------------------------------------------------------------------------------------
# Training tasks
# ---------------------------------------------------------------------------------------------


def test_task_lifecycle(client, app):
    name = unique("ctr")
    ok(create_instance(client, app, "ctr", name, "tf_checkpoint"))
    empty = ok(list_tasks(client, app, "ctr", name))
    assert empty.total_count == 0 and empty.result == []
    expect_error("Task.NotExist", 404, client.get_function_task, app, "ctr", name, "1")

    started = now_ms()
    created = ok(client.create_function_task(app, "ctr", name))
    assert created.request_id

    task = ok(client.get_function_task(app, "ctr", name, "1")).result
    assert task.generation == "1"
    assert task.function_name == "ctr"
    assert task.status == "running"  # pending shows as running, 0 %
    assert task.progress == 0
    assert task.end_time == 0
    assert_recent_ms(task.start_time, started)
    assert isinstance(task.run_id, str) and task.run_id.startswith("api__"), task.run_id
    assert isinstance(task.extend_info, str)

    instance = ok(get_instance(client, app, "ctr", name, output="detail")).result
    assert instance.task.dag_status == "pending"
    assert instance.task.last_run_time == task.start_time
    assert instance.status == "unavailable"

    listed = ok(list_tasks(client, app, "ctr", name))
    assert listed.total_count == 1
    assert [t.generation for t in listed.result] == ["1"]
    assert listed.result[0].to_map() == task.to_map()
    assert ok(list_tasks(client, app, "ctr", name, status="running")).total_count == 1
    assert ok(list_tasks(client, app, "ctr", name, status="success")).total_count == 0
    assert ok(list_tasks(client, app, "ctr", name, status="failed")).total_count == 0
    # startTime: tasks started later than it; milliseconds or (as upstream's examples) seconds.
    assert ok(list_tasks(client, app, "ctr", name, start_time=started - 60_000)).total_count == 1
    assert ok(list_tasks(client, app, "ctr", name, start_time=(started - 60_000) // 1000)).total_count == 1
    assert ok(list_tasks(client, app, "ctr", name, start_time=now_ms() + 3_600_000)).total_count == 0
    # endTime: tasks that ended before it; a pending task has not ended.
    assert ok(list_tasks(client, app, "ctr", name, end_time=now_ms() + 3_600_000)).total_count == 0
    beyond = ok(list_tasks(client, app, "ctr", name, page_number=2, page_size=1))
    assert beyond.total_count == 1 and beyond.result == []

    expect_error("Task.IsRunning", 409, client.create_function_task, app, "ctr", name, contains="generation 1")
    expect_error("Task.UnableDelete", 409, client.delete_function_task, app, "ctr", name, "1")
    assert ok(client.get_function_task(app, "ctr", name, "1")).result.generation == "1"  # still there
    # An instance whose task is pending cannot be deleted either.
    expect_error("Task.IsRunning", 409, client.delete_function_instance, app, "ctr", name)

    expect_error("Task.NotExist", 404, client.get_function_task, app, "ctr", name, "2", contains="2")
    expect_error("Task.NotExist", 404, client.delete_function_task, app, "ctr", name, "2")
    for bad in ("abc", "0", "-1", "01"):
        expect_error("InvalidParameter", 400, client.get_function_task, app, "ctr", name, bad, contains="generation")
    expect_error("InvalidParameter", 400, list_tasks, client, app, "ctr", name, status="done", contains="status")
    expect_error("InvalidParameter", 400, list_tasks, client, app, "ctr", name, page_size=101, contains="pageSize")
    expect_error("InvalidParameter", 400, list_tasks, client, app, "ctr", name, start_time=-1, contains="startTime")

    # Generations count per instance.
    other = unique("pop")
    ok(create_instance(client, app, "pop", other, "pop"))
    ok(client.create_function_task(app, "pop", other))
    assert ok(client.get_function_task(app, "pop", other, "1")).result.function_name == "pop"
    expect_error("Task.NotExist", 404, client.get_function_task, app, "pop", other, "2")

    missing = unique("gone")
    expect_error("Instance.NotExist", 404, client.create_function_task, app, "ctr", missing)
    expect_error("Instance.NotExist", 404, client.get_function_task, app, "ctr", missing, "1")
    expect_error("Instance.NotExist", 404, list_tasks, client, app, "ctr", missing)
    expect_error("Instance.NotExist", 404, client.delete_function_task, app, "ctr", missing, "1")
    expect_error("App.NotFound", 404, client.create_function_task, unique("noapp"), "ctr", name)


# ---------------------------------------------------------------------------------------------
# Default instance
# ---------------------------------------------------------------------------------------------


def test_default_instance(client, app):
    expect_error(
        "DefaultInstance.NotExist", 404, client.get_function_default_instance, app, "hot",
        contains="default instance not set",
    )
    first, second = unique("hot"), unique("hot")
    ok(create_instance(client, app, "hot", first, "offline_inference"))
    ok(create_instance(client, app, "hot", second, "near_realtime"))

    ok(set_default(client, app, "hot", first))
    body = ok(client.get_function_default_instance(app, "hot"))
    assert body.result.instance_name == first
    assert body.instance_name == first
    assert body.function_name == "hot"
    # Defaults are per function.
    expect_error("DefaultInstance.NotExist", 404, client.get_function_default_instance, app, "hint")

    expect_error("Instance.IsDefault", 409, client.delete_function_instance, app, "hot", first, contains=first)

    ok(set_default(client, app, "hot", second))  # overwrites
    assert ok(client.get_function_default_instance(app, "hot")).result.instance_name == second
    ok(client.delete_function_instance(app, "hot", first))  # no longer the default

    missing = unique("gone")
    expect_error("Instance.NotExist", 404, set_default, client, app, "hot", missing)
    expect_error("InvalidParameter", 400, set_default, client, app, "hot", "bad-name", contains="instanceName")
    expect_error("MissingParameter", 400, set_default, client, app, "hot", None, contains="instanceName")
    assert ok(client.get_function_default_instance(app, "hot")).result.instance_name == second

    ok(set_default(client, app, "hot", ""))  # an empty name clears it
    expect_error("DefaultInstance.NotExist", 404, client.get_function_default_instance, app, "hot")
    ok(client.delete_function_instance(app, "hot", second))

    expect_error("App.NotFound", 404, client.get_function_default_instance, unique("noapp"), "hot")
    expect_error("App.NotFound", 404, set_default, client, unique("noapp"), "hot", second)
    expect_error("InvalidParameter", 400, client.get_function_default_instance, app, "rank", contains="functionName")


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def test_raw_file_resource(client, app):
    started = now_ms()
    name = unique("dict")
    ok(raw_file(client, app, "hot", name, "iphone\nipad\n", description="allow list"), latency=float)

    result = ok(get_resource(client, app, "hot", name), latency=float).result
    assert result.resource_name == name
    assert result.resource_type == "raw_file"
    assert result.function_name == "hot"
    assert result.description == "allow list"
    assert result.data.content == "iphone\nipad\n"
    assert result.data.generators == []
    assert result.referenced_instances == []
    assert_recent_ms(result.create_time, started)
    assert result.modify_time == result.create_time

    simple = ok(get_resource(client, app, "hot", name, output="simple"), latency=float).result
    assert simple.resource_name == name and simple.resource_type == "raw_file"
    assert simple.data is None and simple.referenced_instances is None
    detail = ok(get_resource(client, app, "hot", name, output="detail"), latency=float).result
    assert detail.data.content == "iphone\nipad\n"

    time.sleep(0.01)
    ok(
        client.update_function_resource(
            app,
            "hot",
            name,
            models.UpdateFunctionResourceRequest(
                description="allow list v2", data=models.UpdateFunctionResourceRequestData(content="pixel\n")
            ),
        ),
        latency=float,
    )
    updated = ok(get_resource(client, app, "hot", name), latency=float).result
    assert updated.description == "allow list v2"
    assert updated.data.content == "pixel\n"
    assert updated.create_time == result.create_time
    assert updated.modify_time > updated.create_time

    # Description only: the data stays.
    ok(
        client.update_function_resource(
            app, "hot", name, models.UpdateFunctionResourceRequest(description="only text")
        ),
        latency=float,
    )
    updated = ok(get_resource(client, app, "hot", name), latency=float).result
    assert updated.description == "only text" and updated.data.content == "pixel\n"

    # Resources belong to one function.
    expect_error("Resource.NotExist", 404, get_resource, client, app, "hint", name)

    ok(client.delete_function_resource(app, "hot", name), latency=float)
    expect_error("Resource.NotExist", 404, get_resource, client, app, "hot", name, contains=name)
    expect_error("Resource.NotExist", 404, client.delete_function_resource, app, "hot", name)


def test_feature_generator_resource(client, app):
    name = unique("fg")
    generators = [
        generator("CreateFunctionResource", "id", [("system_item_id", "item")], "item_id_feature"),
        generator("CreateFunctionResource", "combo", [("user_id", "user"), ("cate", "item")], "user_cate"),
    ]
    ok(feature_generator(client, app, "ctr", name, generators, description="features"), latency=float)
    result = ok(get_resource(client, app, "ctr", name), latency=float).result
    assert result.resource_type == "feature_generator"
    assert result.function_name == "ctr"
    assert result.data.content == ""
    assert [g.generator for g in result.data.generators] == ["id", "combo"]
    first = result.data.generators[0]
    assert [(f.name, f.type) for f in first.input.features] == [("system_item_id", "item")]
    assert first.output == "item_id_feature"
    second = result.data.generators[1]
    assert [(f.name, f.type) for f in second.input.features] == [("user_id", "user"), ("cate", "item")]
    assert second.output == "user_cate"

    replacement = [generator("UpdateFunctionResource", "raw", [("price", "item")], "price_raw")]
    ok(
        client.update_function_resource(
            app,
            "ctr",
            name,
            models.UpdateFunctionResourceRequest(data=models.UpdateFunctionResourceRequestData(generators=replacement)),
        ),
        latency=float,
    )
    result = ok(get_resource(client, app, "ctr", name), latency=float).result
    assert [(g.generator, g.output) for g in result.data.generators] == [("raw", "price_raw")]
    assert result.description == "features"

    bad = [generator("UpdateFunctionResource", "magic", [("price", "item")], "x")]
    expect_error(
        "InvalidParameter",
        400,
        client.update_function_resource,
        app,
        "ctr",
        name,
        models.UpdateFunctionResourceRequest(data=models.UpdateFunctionResourceRequestData(generators=bad)),
        contains="Data.Generators[0].Generator",
    )
    expect_error(
        "InvalidParameter",
        400,
        client.update_function_resource,
        app,
        "ctr",
        name,
        models.UpdateFunctionResourceRequest(data=models.UpdateFunctionResourceRequestData(content="text")),
        contains="Data.Content",
    )
    ok(client.delete_function_resource(app, "ctr", name), latency=float)


def test_list_function_resources(client, app):
    raw = [unique("raw"), unique("raw")]
    fg = unique("fg")
    ok(raw_file(client, app, "hot", raw[0], "a\n"), latency=float)
    ok(feature_generator(client, app, "hot", fg, [
        generator("CreateFunctionResource", "id", [("item_id", "item")], "item_feature")
    ]), latency=float)
    ok(raw_file(client, app, "hot", raw[1], "b\n"), latency=float)
    ok(raw_file(client, app, "hint", unique("raw"), "c\n"), latency=float)  # another function

    everything = ok(list_resources(client, app, "hot"), latency=float)
    assert everything.total_count == 3
    assert [r.resource_name for r in everything.result] == [raw[1], fg, raw[0]]  # newest first
    assert everything.result[0].data.content == "b\n"

    raws = ok(list_resources(client, app, "hot", resource_type="raw_file"), latency=float)
    assert raws.total_count == 2 and sorted(r.resource_name for r in raws.result) == sorted(raw)
    fgs = ok(list_resources(client, app, "hot", resource_type="feature_generator"), latency=float)
    assert fgs.total_count == 1 and fgs.result[0].resource_name == fg

    page = ok(list_resources(client, app, "hot", page_size=2, page_number=2), latency=float)
    assert page.total_count == 3 and [r.resource_name for r in page.result] == [raw[0]]
    simple = ok(list_resources(client, app, "hot", output="simple"), latency=float)
    assert all(r.data is None for r in simple.result) and len(simple.result) == 3
    assert ok(list_resources(client, app, "hint"), latency=float).total_count == 1
    assert ok(list_resources(client, app, "ctr"), latency=float).total_count == 0

    expect_error("InvalidParameter", 400, list_resources, client, app, "hot", resource_type="csv", contains="resourceType")
    expect_error("InvalidParameter", 400, list_resources, client, app, "hot", page_size=101, contains="pageSize")
    expect_error("App.NotFound", 404, list_resources, client, unique("noapp"), "hot")


def test_resource_errors(client, app):
    name = unique("dict")
    ok(raw_file(client, app, "hot", name, "x\n"), latency=float)
    expect_error("Resource.AlreadyExist", 409, raw_file, client, app, "hot", name, "y\n", contains=name)

    def create(resource_name, resource_type, data):
        return client.create_function_resource(
            app,
            "hot",
            models.CreateFunctionResourceRequest(resource_name=resource_name, resource_type=resource_type, data=data),
        )

    content = models.CreateFunctionResourceRequestData(content="z")
    expect_error("InvalidParameter", 400, create, "bad-name", "raw_file", content, contains="ResourceName")
    expect_error("MissingParameter", 400, create, None, "raw_file", content, contains="ResourceName")
    expect_error("MissingParameter", 400, create, unique("r"), None, content, contains="ResourceType")
    expect_error("InvalidParameter", 400, create, unique("r"), "csv", content, contains="ResourceType")
    expect_error("MissingParameter", 400, create, unique("r"), "raw_file", None, contains="Data")
    one = [generator("CreateFunctionResource", "id", [("item_id", "item")], "out")]
    expect_error(
        "InvalidParameter", 400, create, unique("r"), "raw_file",
        models.CreateFunctionResourceRequestData(content="z", generators=one), contains="Data.Generators",
    )
    expect_error(
        "InvalidParameter", 400, create, unique("r"), "feature_generator",
        models.CreateFunctionResourceRequestData(content="z", generators=one), contains="Data.Content",
    )
    expect_error(
        "InvalidParameter", 400, create, unique("r"), "feature_generator",
        models.CreateFunctionResourceRequestData(generators=[]), contains="Data.Generators",
    )
    expect_error(
        "InvalidParameter", 400, create, unique("r"), "feature_generator",
        models.CreateFunctionResourceRequestData(
            generators=[generator("CreateFunctionResource", "id", [("item_id", "shop")], "out")]
        ),
        contains="Data.Generators[0].Input.Features[0].Type",
    )
    expect_error(
        "InvalidParameter", 400, create, unique("r"), "feature_generator",
        models.CreateFunctionResourceRequestData(
            generators=[generator("CreateFunctionResource", "id", [], "out")]
        ),
        contains="Data.Generators[0].Input.Features",
    )
    # A raw_file resource cannot be turned into generators by an update.
    expect_error(
        "InvalidParameter", 400, client.update_function_resource, app, "hot", name,
        models.UpdateFunctionResourceRequest(
            data=models.UpdateFunctionResourceRequestData(
                generators=[generator("UpdateFunctionResource", "id", [("item_id", "item")], "out")]
            )
        ),
        contains="Data.Generators",
    )
    assert ok(get_resource(client, app, "hot", name), latency=float).result.data.content == "x\n"

    missing = unique("gone")
    expect_error("Resource.NotExist", 404, get_resource, client, app, "hot", missing, contains=missing)
    expect_error(
        "Resource.NotExist", 404, client.update_function_resource, app, "hot", missing,
        models.UpdateFunctionResourceRequest(description="x"),
    )
    expect_error("Resource.NotExist", 404, client.delete_function_resource, app, "hot", missing)
    expect_error("App.NotFound", 404, get_resource, client, unique("noapp"), "hot", name)
    expect_error("App.NotFound", 404, raw_file, client, unique("noapp"), "hot", unique("r"), "x")
    expect_error("InvalidParameter", 400, get_resource, client, app, "rank", name, contains="functionName")


def test_resource_references(client, app):
    allow, deny = unique("allow"), unique("deny")
    ok(raw_file(client, app, "hot", allow, "iphone\n"), latency=float)
    ok(raw_file(client, app, "hot", deny, "spam\n"), latency=float)
    fg = unique("fg")
    ok(feature_generator(client, app, "hot", fg, [
        generator("CreateFunctionResource", "id", [("item_id", "item")], "item_feature")
    ]), latency=float)
    ok(raw_file(client, app, "hint", unique("hintd"), "x\n"), latency=float)

    first, second = unique("hot"), unique("hot")
    ok(create_instance(client, app, "hot", first, "offline_inference", usage=[("allow_dict_id", allow)]))
    referenced = ok(get_resource(client, app, "hot", allow), latency=float).result
    assert referenced.referenced_instances == [first]
    assert pairs_of(ok(get_instance(client, app, "hot", first)).result.usage_parameters) == [("allow_dict_id", allow)]
    ok(create_instance(client, app, "hot", second, "near_realtime",
                       usage=[("allow_dict_id", allow), ("deny_dict_id", deny)]))
    assert ok(get_resource(client, app, "hot", allow), latency=float).result.referenced_instances == sorted(
        [first, second]
    )
    assert ok(get_resource(client, app, "hot", deny), latency=float).result.referenced_instances == [second]

    expect_error("Resource.InUse", 409, client.delete_function_resource, app, "hot", allow, contains=first)
    expect_error("Instance.InUse", 409, client.delete_function_instance, app, "hot", first, contains=allow)
    # Updating description only keeps the references.
    ok(update_instance(client, app, "hot", first, description="still referencing"))
    assert first in ok(get_resource(client, app, "hot", allow), latency=float).result.referenced_instances

    # References must name an existing raw_file resource of the same function.
    expect_error(
        "InvalidParameter", 400, create_instance, client, app, "hot", unique("hot"), "offline_inference",
        usage=[("allow_dict_id", unique("nodict"))], contains="usageParameters.allow_dict_id",
    )
    expect_error(
        "InvalidParameter", 400, create_instance, client, app, "hot", unique("hot"), "offline_inference",
        usage=[("deny_dict_id", fg)], contains="usageParameters.deny_dict_id",
    )
    expect_error(
        "InvalidParameter", 400, update_instance, client, app, "hot", first,
        usage=[("allow_dict_id", "not-a-name")], contains="usageParameters.allow_dict_id",
    )
    assert ok(list_instances(client, app, "hot")).total_count == 2  # refused creations left nothing

    # Dropping the references frees both sides.
    ok(update_instance(client, app, "hot", first, usage=[]))
    assert ok(get_resource(client, app, "hot", allow), latency=float).result.referenced_instances == [second]
    ok(client.delete_function_instance(app, "hot", first))
    ok(update_instance(client, app, "hot", second, usage=[("deny_dict_id", deny)]))
    assert ok(get_resource(client, app, "hot", allow), latency=float).result.referenced_instances == []
    ok(client.delete_function_resource(app, "hot", allow), latency=float)
    expect_error("Resource.InUse", 409, client.delete_function_resource, app, "hot", deny, contains=second)


# ---------------------------------------------------------------------------------------------
# RemoveAppGroup removes everything the app group owns
# ---------------------------------------------------------------------------------------------


def test_remove_app_group_removes_everything(client):
    app = unique("gone")
    ok_app(create_app_group(client, app))
    dictionary, instance = unique("dict"), unique("hot")
    ok(raw_file(client, app, "hot", dictionary, "a\n"), latency=float)
    ok(create_instance(client, app, "hot", instance, "offline_inference", usage=[("allow_dict_id", dictionary)]))
    ok(client.create_function_task(app, "hot", instance))
    ok(set_default(client, app, "hot", instance))

    ok_app(client.remove_app_group(app))
    expect_error("App.NotFound", 404, client.describe_app_group, app)
    expect_error("App.NotFound", 404, get_instance, client, app, "hot", instance)
    expect_error("App.NotFound", 404, get_resource, client, app, "hot", dictionary)
    expect_error("App.NotFound", 404, client.get_function_default_instance, app, "hot")
    expect_error("App.NotFound", 404, client.remove_app_group, app)

    # A new app group of the same name starts empty.
    ok_app(create_app_group(client, app))
    try:
        assert ok(list_instances(client, app, "hot")).total_count == 0
        assert ok(list_resources(client, app, "hot"), latency=float).total_count == 0
        expect_error("DefaultInstance.NotExist", 404, client.get_function_default_instance, app, "hot")
        ok(create_instance(client, app, "hot", instance, "offline_inference"))
        assert ok(list_tasks(client, app, "hot", instance)).total_count == 0
        ok(raw_file(client, app, "hot", dictionary, "b\n"), latency=float)
    finally:
        ok_app(client.remove_app_group(app))


# ---------------------------------------------------------------------------------------------
# Transports: legacy v2 signing, aiohttp, numeric app group ids
# ---------------------------------------------------------------------------------------------


def test_legacy_v2_signature(client_v2):
    client = client_v2
    app = unique("v2app")
    created = ok_app(create_app_group(client, app)).result
    try:
        assert created.name == app
        assert ok_app(client.describe_app_group(app)).result.id == created.id
        assert ok_app(client.list_app_groups(models.ListAppGroupsRequest(name=app))).total_count == 1
        assert ok_app(client.modify_app_group(app, models.ModifyAppGroupRequest(description="v2"))).result.description == "v2"

        name = unique("ctr")
        ok(create_instance(client, app, "ctr", name, "tf_checkpoint", create=[("id_field", "item_id")], cron="0 0 * * *"))
        result = ok(get_instance(client, app, "ctr", name, output="detail")).result
        assert result.instance_name == name and result.task.dag_status == "untrained"
        assert pairs_of(result.create_parameters) == [("id_field", "item_id")]
        ok(update_instance(client, app, "ctr", name, description="v2 update"))
        listed = ok(list_instances(client, app, "ctr", page_size=1))
        assert listed.total_count == 1 and listed.result[0].description == "v2 update"

        ok(raw_file(client, app, "ctr", unique("raw"), "a\n"), latency=float)
        assert ok(list_resources(client, app, "ctr"), latency=float).total_count == 1

        ok(set_default(client, app, "ctr", name))
        assert ok(client.get_function_default_instance(app, "ctr")).result.instance_name == name
        assert ok(client.get_function_version("hot", "401")).result.version_name == "v1"
        assert ok(
            client.get_function_current_version("ctr", models.GetFunctionCurrentVersionRequest(model_type="tf_checkpoint"))
        ).result.version_id == 101

        ok(client.create_function_task(app, "ctr", name))
        assert ok(client.get_function_task(app, "ctr", name, "1")).result.status == "running"
        expect_error("Task.IsRunning", 409, client.create_function_task, app, "ctr", name)
        expect_error("Instance.AlreadyExist", 409, create_instance, client, app, "ctr", name, "tf_checkpoint")
        expect_error("Instance.NotExist", 404, get_instance, client, app, "ctr", unique("gone"))
        expect_error("InvalidParameter", 400, create_instance, client, app, "ctr", unique("i"), "tf_checkpoint",
                     create=[("param1", "x")], contains="createParameters.param1")
        expect_error("App.NotFound", 404, client.describe_app_group, unique("nope"))
    finally:
        ok_app(client.remove_app_group(app))
    expect_error("App.NotFound", 404, client.describe_app_group, app)


def test_async_transport(client):
    async def scenario():
        app = unique("asyncapp")
        created = await client.create_app_group_async(models.CreateAppGroupRequest(name=app, type="standard"))
        assert ok_app(created).result.name == app
        try:
            described = await client.describe_app_group_async(app)
            assert ok_app(described).result.name == app
            listed = await client.list_app_groups_async(models.ListAppGroupsRequest(name=app))
            assert ok_app(listed).total_count == 1

            name = unique("hot")
            ok(await client.create_function_instance_async(
                app, "hot",
                models.CreateFunctionInstanceRequest(
                    instance_name=name,
                    model_type="offline_inference",
                    create_parameters=[models.CreateFunctionInstanceRequestCreateParameters(name="top_n", value="20")],
                ),
            ))
            result = ok(await client.get_function_instance_async(
                app, "hot", name, models.GetFunctionInstanceRequest(output="detail")
            )).result
            assert result.instance_name == name and result.version_id == 401
            assert pairs_of(result.create_parameters) == [("top_n", "20")]

            # Concurrent reads over the aiohttp transport.
            pages = await asyncio.gather(*[
                client.list_function_instances_async(app, "hot", models.ListFunctionInstancesRequest())
                for _ in range(4)
            ])
            assert [ok(page).total_count for page in pages] == [1, 1, 1, 1]

            ok(await client.create_function_task_async(app, "hot", name))
            task = ok(await client.get_function_task_async(app, "hot", name, "1")).result
            assert task.generation == "1" and task.status == "running"
            tasks = ok(await client.list_function_tasks_async(app, "hot", name, models.ListFunctionTasksRequest()))
            assert tasks.total_count == 1

            resource = unique("raw")
            ok(await client.create_function_resource_async(
                app, "hot",
                models.CreateFunctionResourceRequest(
                    resource_name=resource, resource_type="raw_file",
                    data=models.CreateFunctionResourceRequestData(content="q\n"),
                ),
            ), latency=float)
            got = ok(await client.get_function_resource_async(
                app, "hot", resource, models.GetFunctionResourceRequest()
            ), latency=float).result
            assert got.data.content == "q\n"

            ok(await client.update_function_default_instance_async(
                app, "hot", models.UpdateFunctionDefaultInstanceRequest(instance_name=name)
            ))
            default = ok(await client.get_function_default_instance_async(app, "hot"))
            assert default.result.instance_name == name
            version = ok(await client.get_function_version_async("hot", "401")).result
            assert version.version_id == 401

            await expect_error_async("Task.IsRunning", 409, client.create_function_task_async(app, "hot", name))
            await expect_error_async(
                "Instance.NotExist", 404,
                client.get_function_instance_async(app, "hot", unique("gone"), models.GetFunctionInstanceRequest()),
            )
            await expect_error_async("Task.UnableDelete", 409, client.delete_function_task_async(app, "hot", name, "1"))
        finally:
            ok_app(await client.remove_app_group_async(app))
        await expect_error_async("App.NotFound", 404, client.describe_app_group_async(app))

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["acs3", "v2"])
def test_non_ascii_and_reserved_characters_are_signed_and_kept(client, client_v2, transport):
    """Bodies and query values with UTF-8 and URL-reserved characters pass both signers and
    come back byte for byte; path segments the SDK percent-encodes reach the name check."""
    sdk = client if transport == "acs3" else client_v2
    app = unique("utf")
    ok_app(create_app_group(sdk, app))
    try:
        text = "苹果\n手机 +&=%?#/\\ ✓\n"
        name = unique("dict")
        ok(raw_file(sdk, app, "hot", name, text, description="说明 a+b&c=d"), latency=float)
        result = ok(get_resource(sdk, app, "hot", name), latency=float).result
        assert result.data.content == text
        assert result.description == "说明 a+b&c=d"
        instance = unique("hot")
        ok(create_instance(sdk, app, "hot", instance, "offline_inference", description="热搜 ✓",
                           create=[("filter", "user_id != 中文")]))
        got = ok(get_instance(sdk, app, "hot", instance)).result
        assert got.description == "热搜 ✓"
        assert pairs_of(got.create_parameters) == [("filter", "user_id != 中文")]
        listed = ok_app(sdk.list_app_groups(models.ListAppGroupsRequest(name="苹果 a+b&c=d/%20")))
        assert listed.total_count == 0
        expect_error("InvalidParameter", 400, get_instance, sdk, app, "hot", "i 1/x?y", contains="instanceName")
    finally:
        ok_app(sdk.remove_app_group(app))


def test_numeric_app_group_identity(client, app):
    app_id = ok_app(client.describe_app_group(app)).result.id
    name = unique("pop")
    ok(create_instance(client, app_id, "pop", name, "pop"))
    assert ok(get_instance(client, app, "pop", name)).result.instance_name == name
    assert ok(get_instance(client, app_id, "pop", name)).result.instance_name == name
    assert ok(list_instances(client, app_id, "pop")).total_count == 1
    expect_error("App.NotFound", 404, client.describe_app_group, "999999999999")


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [None, "v2"], ids=["acs3", "v2"])
def test_wrong_secret_and_unknown_key(algorithm):
    extra = {} if algorithm is None else {"signature_algorithm": algorithm}
    _, access_key_id, secret = settings()
    wrong_secret = Recorded(make_client(access_key_secret=secret + "x", **extra), algorithm or "acs3")
    expect_error("SignatureDoesNotMatch", 400, wrong_secret.list_app_groups, models.ListAppGroupsRequest())
    expect_error(
        "SignatureDoesNotMatch", 400, wrong_secret.create_app_group,
        models.CreateAppGroupRequest(name=unique("never"), type="standard"),
    )
    expect_error("SignatureDoesNotMatch", 400, wrong_secret.get_function_version, "hot", "401")

    unknown = Recorded(make_client(access_key_id="TYUNKNOWN" + RUN.upper(), **extra), algorithm or "acs3")
    expect_error("InvalidAccessKeyId.NotFound", 404, unknown.list_app_groups, models.ListAppGroupsRequest())
    expect_error("InvalidAccessKeyId.NotFound", 404, unknown.get_function_version, "hot", "401")


def test_wrong_secret_async():
    _, _, secret = settings()
    wrong = make_client(access_key_secret=secret + "x")
    asyncio.run(expect_error_async("SignatureDoesNotMatch", 400, wrong.get_function_version_async("hot", "401")))


# ---------------------------------------------------------------------------------------------
# Coverage: every operation went through the SDK (only meaningful when the whole file runs)
# ---------------------------------------------------------------------------------------------


def test_zz_every_operation_was_exercised(request):
    option = request.config.option
    if option.keyword or option.markexpr or any("::" in arg for arg in request.config.args):
        pytest.skip("only checked when the whole file runs")
    missing = sorted(operation for operation in ALL_OPERATIONS if "acs3" not in CALLED.get(operation, set()))
    assert not missing, f"never called through the default client: {missing}"
    assert len(FUNCTION_OPERATIONS) == 18
    v2 = sorted(operation for operation in ALL_OPERATIONS if "v2" in CALLED.get(operation, set()))
    assert len(v2) >= 10, v2
    asynchronous = sorted(operation for operation in ALL_OPERATIONS if "async" in CALLED.get(operation, set()))
    assert len(asynchronous) >= 10, asynchronous
    print(f"\noperations through ACS3: {len(ALL_OPERATIONS)}; v2: {len(v2)}; async: {len(asynchronous)}", file=sys.stderr)
