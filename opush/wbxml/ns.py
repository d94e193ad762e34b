"""Namespace URIs of the ActiveSync code pages: the page name and a colon, as libwbxml2 writes them.

``ns.AIRSYNC == "AirSync:"``; an element's lxml tag is ``"{AirSync:}Sync"``.
"""

AIRSYNC = "AirSync:"  # code page 0
CONTACTS = "Contacts:"  # code page 1
EMAIL = "Email:"  # code page 2
AIRNOTIFY = "AirNotify:"  # code page 3 (no longer used, decoded only)
CALENDAR = "Calendar:"  # code page 4
MOVE = "Move:"  # code page 5
GETITEMESTIMATE = "GetItemEstimate:"  # code page 6
FOLDERHIERARCHY = "FolderHierarchy:"  # code page 7
MEETINGRESPONSE = "MeetingResponse:"  # code page 8
TASKS = "Tasks:"  # code page 9
RESOLVERECIPIENTS = "ResolveRecipients:"  # code page 10
VALIDATECERT = "ValidateCert:"  # code page 11
CONTACTS2 = "Contacts2:"  # code page 12
PING = "Ping:"  # code page 13
PROVISION = "Provision:"  # code page 14
SEARCH = "Search:"  # code page 15
GAL = "GAL:"  # code page 16 (libwbxml2 writes "Gal:")
AIRSYNCBASE = "AirSyncBase:"  # code page 17
SETTINGS = "Settings:"  # code page 18
DOCUMENTLIBRARY = "DocumentLibrary:"  # code page 19
ITEMOPERATIONS = "ItemOperations:"  # code page 20
COMPOSEMAIL = "ComposeMail:"  # code page 21
EMAIL2 = "Email2:"  # code page 22
NOTES = "Notes:"  # code page 23
RIGHTSMANAGEMENT = "RightsManagement:"  # code page 24
FIND = "Find:"  # code page 25
