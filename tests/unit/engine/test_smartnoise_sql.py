"""smartnoise-sql: the seed query, the library's own cost, and what SQL is refused."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import snsql
from snsql.sql._mechanisms.gaussian import Gaussian
from snsql.sql.private_reader import PrivateReader

from dpkube.budget.zcdp import epsilon_of
from dpkube.engine.cost import estimate_cost
from dpkube.engine.errors import ExternalLibraryError, PayloadRejected
from dpkube.engine.libraries.smartnoise_sql import privacy
from dpkube.engine.release import run_query
from dpkube.models.examples import query_payload as seed_query
from dpkube.models.metadata import Metadata
from dpkube.models.payloads import Library, SmartnoiseSQLPayload

SQL = Library.SMARTNOISE_SQL


def test_seed_example_returns_a_tight_frame_with_a_positive_count(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    release = run_query(SQL, seed_query(SQL), penguin_metadata, penguin_frame)
    assert set(release.response) == {"index", "columns", "data", "index_names", "column_names"}
    assert release.response["columns"] == ["NB_ROW"]
    assert release.response["data"][0][0] > 0


def test_seed_example_costs_the_librarys_odometer(penguin_metadata: Metadata) -> None:
    cost = estimate_cost(SQL, seed_query(SQL), penguin_metadata)
    assert cost.epsilon == 0.1
    assert cost.delta == 1.4999949999983109e-05


def test_count_at_epsilon_4_costs_4_and_composed_delta(penguin_metadata: Metadata) -> None:
    cost = estimate_cost(SQL, seed_query(SQL, epsilon=4.0, mechanisms={}), penguin_metadata)
    assert (cost.epsilon, cost.delta) == (4.0, 1.4999949999983109e-05)
    assert 0.005 - 2 * cost.delta == pytest.approx(0.004970000100000034, rel=1e-12)


def test_count_and_average_cost_three_times_epsilon(penguin_metadata: Metadata) -> None:
    query = "SELECT COUNT(*) AS n, AVG(bill_length_mm) AS a FROM df"
    cost = estimate_cost(SQL, seed_query(SQL, query_str=query, epsilon=0.5), penguin_metadata)
    assert cost.epsilon == 1.5


def test_a_gaussian_count_costs_the_rho_of_the_noise_scale_smartnoise_uses(
        penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    reader = snsql.from_df(penguin_frame, metadata=penguin_metadata.smartnoise_sql(),
                           privacy=privacy(SmartnoiseSQLPayload.model_validate(seed_query(SQL))))
    (mechanism,) = [m for m in reader._get_mechanisms(reader._rewrite(seed_query(SQL)["query_str"])[0]) if m]
    sensitivity = mechanism.max_contrib * max(abs(mechanism.lower), abs(mechanism.upper))
    cost = estimate_cost(SQL, seed_query(SQL), penguin_metadata)
    assert isinstance(mechanism, Gaussian)
    assert cost.rho == pytest.approx(sensitivity ** 2 / (2 * mechanism.scale ** 2), rel=1e-6)
    assert cost.rho >= sensitivity ** 2 / (2 * mechanism.scale ** 2)


def test_a_gaussian_counts_rho_converts_back_to_the_epsilon_it_was_calibrated_for(
        penguin_metadata: Metadata) -> None:
    cost = estimate_cost(SQL, seed_query(SQL), penguin_metadata)
    assert cost.rho is not None
    assert epsilon_of(cost.rho, 1e-5) == pytest.approx(0.1, rel=1e-6)


def test_each_gaussian_aggregate_adds_its_rho(penguin_metadata: Metadata) -> None:
    gaussian = {"count": "gaussian", "sum_float": "gaussian"}
    count = estimate_cost(SQL, seed_query(SQL, mechanisms=gaussian), penguin_metadata)
    query = "SELECT COUNT(*) AS n, AVG(bill_length_mm) AS a FROM df"
    both = estimate_cost(SQL, seed_query(SQL, query_str=query, mechanisms=gaussian), penguin_metadata)
    assert count.rho is not None and both.rho is not None and both.rho > 2 * count.rho


def test_a_laplace_query_has_no_rho(penguin_metadata: Metadata) -> None:
    assert estimate_cost(SQL, seed_query(SQL, mechanisms={}), penguin_metadata).rho is None


def test_a_query_mixing_laplace_and_gaussian_has_no_rho(penguin_metadata: Metadata) -> None:
    query = "SELECT COUNT(*) AS n, AVG(bill_length_mm) AS a FROM df"
    payload = seed_query(SQL, query_str=query, mechanisms={"count": "gaussian", "sum_float": "laplace"})
    assert estimate_cost(SQL, payload, penguin_metadata).rho is None


def test_groups_thresholded_on_a_noisy_count_have_no_rho(penguin_metadata: Metadata) -> None:
    censored = penguin_metadata.model_copy(update={"censor_dims": True})
    query = "SELECT species, COUNT(*) AS n FROM df GROUP BY species"
    assert estimate_cost(SQL, seed_query(SQL, query_str=query), censored).rho is None


def test_release_is_charged_the_estimate(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    payload = seed_query(SQL, query_str="SELECT AVG(bill_length_mm) AS a FROM df")
    release = run_query(SQL, payload, penguin_metadata, penguin_frame)
    assert release.cost == estimate_cost(SQL, payload, penguin_metadata)


def test_without_postprocess_the_first_raw_row_is_returned(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame
) -> None:
    payload = seed_query(SQL, query_str="SELECT AVG(bill_length_mm) AS a FROM df", postprocess=False)
    release = run_query(SQL, payload, penguin_metadata, penguin_frame)
    assert release.response["columns"] == ["res_0", "res_1"]
    assert len(release.response["data"]) == 1


def test_mechanism_overrides_are_applied(penguin_metadata: Metadata) -> None:
    gaussian = estimate_cost(SQL, seed_query(SQL), penguin_metadata)
    laplace = estimate_cost(SQL, seed_query(SQL, mechanisms={"count": "laplace"}), penguin_metadata)
    assert laplace.epsilon == gaussian.epsilon


def test_tiny_epsilon_fails_with_lomas_cost_message(penguin_metadata: Metadata) -> None:
    with pytest.raises(ExternalLibraryError) as error:
        estimate_cost(SQL, seed_query(SQL, epsilon=1e-9), penguin_metadata)
    assert error.value.message.startswith(
        "Error obtaining cost: Noise scale is too large using epsilon=1e-09 and bounds (0, 1) with Mechanism.gaussian."
    )
    assert error.value.library is SQL


def test_unknown_column_fails_with_lomas_cost_message(penguin_metadata: Metadata) -> None:
    with pytest.raises(ExternalLibraryError, match="Error obtaining cost: Column cannot be found bill"):
        estimate_cost(SQL, seed_query(SQL, query_str="SELECT AVG(bill) FROM df"), penguin_metadata)


def test_nan_result_is_a_library_error_without_retry(
    penguin_metadata: Metadata, penguin_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def nan_rows(self: object, query: str, postprocess: bool = True) -> list:
        calls.append(query)
        return [["a"], [float("nan")]]

    monkeypatch.setattr(PrivateReader, "execute", nan_rows)
    payload = seed_query(SQL, query_str="SELECT AVG(bill_length_mm) AS a FROM df")
    with pytest.raises(ExternalLibraryError, match=r"NAN results.*not retried"):
        run_query(SQL, payload, penguin_metadata, penguin_frame)
    assert len(calls) == 1


def test_null_group_key_is_a_result_not_a_nan_refusal(penguin_metadata: Metadata, penguin_frame: pd.DataFrame) -> None:
    payload = seed_query(SQL, query_str="SELECT sex, COUNT(*) AS n FROM df GROUP BY sex", epsilon=5.0)
    release = run_query(SQL, payload, penguin_metadata, penguin_frame)
    assert {row[0] for row in release.response["data"]} <= {None, "MALE", "FEMALE"}


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT COUNT(*) FROM other", "only the table 'df', not other"),
        ("SELECT COUNT(*) FROM df; SELECT COUNT(*) FROM df", "exactly one SELECT"),
        ("SELECT COUNT(*) FROM df JOIN df AS b ON df.sex = b.sex", "joins or subqueries"),
        ("SELECT COUNT(*) FROM (SELECT * FROM df) AS t", "joins or subqueries"),
        ("DROP TABLE df", "not valid smartnoise-sql SQL"),
    ],
)
def test_sql_outside_the_one_table_is_rejected(penguin_metadata: Metadata, query: str, reason: str) -> None:
    with pytest.raises(PayloadRejected, match=reason):
        estimate_cost(SQL, seed_query(SQL, query_str=query), penguin_metadata)


def test_unknown_mechanism_is_rejected_naming_the_accepted_ones(penguin_metadata: Metadata) -> None:
    with pytest.raises(PayloadRejected, match="mechanism 'cauchy' for count is unknown; accepted: laplace"):
        estimate_cost(SQL, seed_query(SQL, mechanisms={"count": "cauchy"}), penguin_metadata)


def test_unknown_mechanism_key_is_rejected(penguin_metadata: Metadata) -> None:
    with pytest.raises(PayloadRejected, match="mechanisms key 'median' is not supported"):
        estimate_cost(SQL, seed_query(SQL, mechanisms={"median": "laplace"}), penguin_metadata)


def imported_after(code: str) -> str:
    program = f"import sys; {code}; print(sorted(m for m in ('opendp', 'sklearn', 'torch') if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout.strip()


def test_the_sql_engine_loads_without_scikit_learn_or_torch() -> None:
    assert imported_after("import dpkube.engine.libraries.smartnoise_sql") == "['opendp']"


def test_opendp_s_pca_still_loads_when_asked_for() -> None:
    code = ("import dpkube.engine.libraries.smartnoise_sql, opendp.prelude as dp; "
            "assert dp.sklearn.PCA.__name__ == 'PCA'")
    assert imported_after(code) == "['opendp', 'sklearn']"


def test_the_stand_in_for_opendp_s_pca_imports_no_opendp() -> None:
    assert imported_after("import dpkube.engine.libraries.opendp_pca") == "[]"


def test_an_xpath_is_parsed_once_and_evaluates_on_each_tree_it_is_given() -> None:
    from snsql.sql.parse import QueryParser
    from snsql.xpath.parse import XPath

    import dpkube.engine.libraries.smartnoise_sql  # noqa: F401  (memoises the XPath parse)

    assert XPath().parse("//Table") is XPath().parse("//Table")
    first = QueryParser().query("SELECT COUNT(*) FROM df")
    second = QueryParser().query("SELECT SUM(a) FROM other")
    assert str(first.xpath_first("//Table")) == "df"
    assert str(second.xpath_first("//Table")) == "other"
