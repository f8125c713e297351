"""What the leak check looks for in text: dates, paths, data files, state and person keys."""

from __future__ import annotations

import re

EDGE_L, EDGE_R = r"(?<![A-Za-z0-9])", r"(?![A-Za-z0-9])"
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
DATE_RE = re.compile(
    r"(?<![\d.])(?:"
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # ISO 2000-01-31, 2000/01/31
    r"|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"  # 31.01.00, 01/31/2000, EDF's dd.mm.yy
    rf"|\d{{1,2}}[-\s]?(?:{_MONTHS})[a-z]*[-\s,]*\d{{2,4}}"  # 01-JAN-2000, 1 Jan 2000
    rf"|(?:{_MONTHS})[a-z]*\s+\d{{1,2}},?\s+\d{{4}}"  # Jan 1, 2000
    r")(?![\d.])",
    re.IGNORECASE,
)
PATH_RE = re.compile(r"(?<![\w.])(?:~|\.{1,2})?(?:/[\w.@+-]+){2,}/?|(?<![\w])[A-Za-z]:\\|~/")
DATA_FILE_RE = re.compile(
    EDGE_L + r"[\w-]+\.(?:edf|bdf|rec|hea|dat|qrs|apn|atr|xml|st|ecg|mat|csv)" + EDGE_R,
    re.IGNORECASE,
)
STATE_KEY_RE = re.compile(
    r"running_mean|running_var|num_batches_tracked|state_dict|(?:^|\.)(?:weight|bias)$",
    re.IGNORECASE,
)
PERSON_KEY_RE = re.compile(
    r"(?:^|[_.\s-])(?:persons?|subjects?|patients?|records?|record_index|segment_index|his_id"
    r"|birthday|birthdate|meas_date)(?:$|[_.\s-])",
    re.IGNORECASE,
)
EDF_PLACEHOLDERS = {"x", "startdate"}
