"""SIP and media: pjsua2 bridge workers, IVR, queues and ACD, recording and the media fork."""
