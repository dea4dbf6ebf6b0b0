"""The job reporter's reading of pods and Jobs (what it says about a missing Secret, a missing key,
an OOM kill, a failed Job). Against the simulated cluster and a real worker it runs in
tests/cluster/test_failures.py."""

from __future__ import annotations

from bridgeai.ops.job_reporter import diagnose, job_failure


def _pod(state: dict, env: list | None = None, limits: dict | None = None) -> dict:
    return {
        "metadata": {"name": "run-x-abcde", "namespace": "bridgeai"},
        "spec": {
            "containers": [
                {
                    "name": "prefect-job",
                    "env": env or [],
                    "resources": {"limits": limits or {}},
                }
            ]
        },
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "prefect-job", "state": state}],
        },
    }


def _ref(variable: str, secret: str, key: str, optional: bool = False) -> dict:
    ref = {"name": secret, "key": key, **({"optional": True} if optional else {})}
    return {"name": variable, "valueFrom": {"secretKeyRef": ref}}


S3_ENV = [
    _ref("AWS_ACCESS_KEY_ID", "bridgeai-s3", "access-key-id"),
    _ref("AWS_SECRET_ACCESS_KEY", "bridgeai-s3", "secret-access-key"),
    _ref("MLFLOW_TRACKING_PASSWORD", "bridgeai-mlflow", "password", optional=True),
]


def test_a_missing_secret_names_the_secret_its_keys_and_the_fix() -> None:
    waiting = {"reason": "CreateContainerConfigError", "message": 'secret "bridgeai-s3" not found'}
    problem = diagnose(_pod({"waiting": waiting}, env=S3_ENV))
    assert problem is not None and problem.reason == "CreateContainerConfigError"
    assert "access-key-id (AWS_ACCESS_KEY_ID)" in problem.message
    assert "secret-access-key (AWS_SECRET_ACCESS_KEY)" in problem.message
    assert "kubectl -n bridgeai create secret generic bridgeai-s3" in problem.message
    assert "bridgeai-mlflow" not in problem.message  # optional, and another Secret


def test_a_missing_key_names_the_key() -> None:
    message = "couldn't find key secret-access-key in Secret bridgeai/bridgeai-s3"
    waiting = {"reason": "CreateContainerConfigError", "message": message}
    problem = diagnose(_pod({"waiting": waiting}, env=S3_ENV))
    assert problem is not None
    assert "has no key 'secret-access-key'" in problem.message


def test_an_oom_kill_says_the_limit_and_a_clean_exit_is_no_problem() -> None:
    killed = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    problem = diagnose(_pod(killed, limits={"memory": "256Mi"}))
    assert problem is not None and problem.reason == "OOMKilled"
    assert "memory limit 256Mi" in problem.message and "exit code 137" in problem.message
    child = diagnose(_pod({"terminated": {"reason": "OOMKilled", "exitCode": 0}}))
    assert child is not None and "a process in container 'prefect-job' was killed" in child.message
    assert diagnose(_pod({"terminated": {"reason": "Completed", "exitCode": 0}})) is None
    assert diagnose(_pod({"running": {"startedAt": "2026-01-01T00:00:00Z"}})) is None
    failed = diagnose(_pod({"terminated": {"reason": "Error", "exitCode": 3}}))
    assert failed is not None and "exited with code 3" in failed.message


def test_only_a_failed_condition_is_a_job_failure() -> None:
    failed = {
        "status": {
            "conditions": [
                {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                },
            ]
        }
    }
    assert job_failure(failed) == (
        "DeadlineExceeded: Job was active longer than specified deadline"
    )
    assert job_failure({"status": {"active": 1}}) is None
    assert job_failure({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) is None
