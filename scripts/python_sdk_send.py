#!/usr/bin/env python3
"""Meta's own Python Business SDK (facebook_business) sending Conversion Leads
events to a Graph-compatible URL (leadsignal's sandbox). Used by
`leadsignal bench deliver --python-sdk` for the comparison, and as proof that
the sandbox accepts what the official SDK sends.

Usage: python_sdk_send.py GRAPH_URL DATASET_ID TOKEN EVENTS [BATCH]
Prints one JSON object: {"events": n, "accepted": n, "seconds": s, "events_per_sec": r}.
The token comes as an argument only because the sandbox's token is not a secret.
"""
import json
import sys
import time

from facebook_business.api import FacebookAdsApi
from facebook_business.session import FacebookSession
from facebook_business.adobjects.serverside.action_source import ActionSource
from facebook_business.adobjects.serverside.custom_data import CustomData
from facebook_business.adobjects.serverside.event import Event
from facebook_business.adobjects.serverside.event_request import EventRequest
from facebook_business.adobjects.serverside.user_data import UserData

CITIES = [("Menlo Park", "ca", "94025"), ("Austin", "tx", "78701"),
          ("New York", "ny", "10001"), ("Seattle", "wa", "98101")]


def main():
    url, dataset, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    batch = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    FacebookSession.GRAPH = url.rstrip("/")
    FacebookAdsApi.init(access_token=token, api_version="v23.0")
    now = int(time.time())
    accepted = 0
    start = time.perf_counter()
    for first in range(0, n, batch):
        events = []
        for i in range(first, min(n, first + batch)):
            city, state, zp = CITIES[i % 4]
            user = UserData(
                email=f"Person.{i}@Example.com",
                phone=f"1650555{i % 10000:04d}",
                first_name=f"Jane{i % 97}",
                last_name=f"Doe{i % 89}",
                city=city,
                state=state,
                zip_code=zp,
                country_code="us",
                lead_id=str(1_000_000_000_000_000 + i),
            )
            events.append(Event(
                event_name="Lead",
                event_time=now - 3600,
                event_id=f"sdk-{i}",
                user_data=user,
                custom_data=CustomData(custom_properties={
                    "event_source": "crm", "lead_event_source": "HubSpot"}),
                action_source=ActionSource.SYSTEM_GENERATED,
            ))
        response = EventRequest(events=events, pixel_id=dataset).execute()
        accepted += response.events_received
    seconds = time.perf_counter() - start
    print(json.dumps({"events": n, "accepted": accepted, "seconds": round(seconds, 3),
                      "events_per_sec": round(n / seconds)}))
    return 0 if accepted == n else 1


if __name__ == "__main__":
    sys.exit(main())
