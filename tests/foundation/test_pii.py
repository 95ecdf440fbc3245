import logging

from domain.logs import PiiMaskingFilter
from domain.pii import mask_pii, mask_value


def test_masks_mobile_landline_and_id_numbers():
    text = "来电13978261453，座机0772-4212345，身份证452701199001011234，工号8"
    masked = mask_pii(text)
    assert masked == "来电139****1453，座机0772-****345，身份证452701********1234，工号8"
    assert mask_value({"a": [text]})["a"][0] == masked


def test_log_records_are_masked(caplog):
    logger = logging.getLogger("test.pii")
    logger.addFilter(PiiMaskingFilter())
    with caplog.at_level(logging.INFO, logger="test.pii"):
        logger.info("caller %s called", "13978261453")
    assert "13978261453" not in caplog.text and "139****1453" in caplog.text
