import json

from geolink.cli.main import main


def test_complexity_json_on_the_test_preset(capsys):
    assert main(["complexity", "--preset", "test", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["params_all"] > 0 and res["macs_with_attention"] > res["macs_no_attention"] > 0
    if res["thop"] is not None:
        # thop leaves out positional embeddings and tokens
        assert res["thop"]["params"] < res["params_all"]


def test_cli_reports_config_errors_without_traceback(capsys):
    assert main(["complexity", "--preset", "test", "train.nope=1"]) == 2
    assert "nope" in capsys.readouterr().err
