"""Dioptra v0's error texts, verbatim: its scripts test words of them (`"Not Found" in r["message"]`)."""

from __future__ import annotations

from dpkube.api.errors import DioptraBadRequest, DioptraForbidden, DioptraNotFound, DioptraUnavailable


def not_found(what: str) -> DioptraNotFound:
    """`what`: experiment, queue, job or task plugin package."""
    return DioptraNotFound(f"Not Found - The requested {what} does not exist")


def duplicate_name(what: str) -> DioptraBadRequest:
    """`what`: experiment or queue."""
    return DioptraBadRequest(
        f"Bad Request - The {what} name on the registration form already exists. "
        "Please select another and resubmit.")


def duplicate_plugin() -> DioptraBadRequest:
    return DioptraBadRequest(
        "Bad Request - The names of one or more of the uploaded task plugin packages conflicts with an existing "
        "package in the collection. To update an existing task plugin package, delete it first and then resubmit.")


def invalid_job_form(detail: str) -> DioptraBadRequest:
    return DioptraBadRequest(
        "Bad Request - The job submission form contains invalid parameters. Please verify and resubmit.", detail)


def invalid_plugin_form(detail: str) -> DioptraBadRequest:
    return DioptraBadRequest(
        "Bad Request - The task plugin upload form contains invalid parameters. Please verify and resubmit.", detail)


def queue_locked() -> DioptraForbidden:
    return DioptraForbidden("Forbidden - The requested queue is locked.")


def store_failed(detail: str) -> DioptraUnavailable:
    return DioptraUnavailable(
        "Service Unavailable - Unable to store the workflow file after upload. Please try again later.", detail)
