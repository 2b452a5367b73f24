package main

// The images are FROM scratch, with no /usr/share/zoneinfo: the zone of a
// --cron --tz schedule loads from the database embedded here (about 450 KB).
import _ "time/tzdata"
