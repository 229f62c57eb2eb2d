from events import record

import lepton


@lepton.function(triggers=[lepton.on_cron("* * * * * */1", timezone="Europe/Paris", data={"tick": True})])
def ticker(event: lepton.CloudEvent) -> None:
    record("ticker", event, data=event.get_data())
