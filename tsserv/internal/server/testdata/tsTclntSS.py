#!/usr/bin/env python3
"""tsTclntSS.py: the chapter's SocketServer TCP timestamp client, in Python 3.

A new connection for each message, sent as '%s\\r\\n' % data; the reply of
one recv(BUFSIZ) is printed stripped, as the chapter does. With -raw first
the reply bytes are written unchanged, so a test can see the server's CRLF:

    tsTclntSS.py [-raw] HOST PORT MESSAGE...

A HOST with a colon is an IPv6 address.
"""

import sys
from socket import *

args = sys.argv[1:]
raw = args[:1] == ['-raw']
if raw:
    args = args[1:]

HOST = args[0]
PORT = int(args[1])
BUFSIZ = 1024
ADDR = (HOST, PORT)

for data in args[2:]:
    tcpCliSock = socket(AF_INET6 if ':' in HOST else AF_INET, SOCK_STREAM)
    tcpCliSock.connect(ADDR)
    tcpCliSock.send(('%s\r\n' % data).encode('utf-8'))
    data = tcpCliSock.recv(BUFSIZ)
    if not data:
        break
    if raw:
        sys.stdout.buffer.write(data)
    else:
        print(data.strip().decode('utf-8'))
    tcpCliSock.close()
