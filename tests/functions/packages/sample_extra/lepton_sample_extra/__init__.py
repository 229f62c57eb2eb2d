GREETING = "installed for this revision"
