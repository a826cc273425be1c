#!/usr/bin/env python3
"""tsTclnt.py: the chapter's TCP timestamp client, in Python 3.

One connection; each message goes out as bare text with no newline, and
what one recv(BUFSIZ) brings back is printed. The chapter reads the
messages at a '> ' prompt; the interop tests give them as arguments:

    tsTclnt.py HOST PORT MESSAGE...

A HOST with a colon is an IPv6 address, as in the chapter's tsTclntV6.py.
"""

import sys
from socket import *

HOST = sys.argv[1]
PORT = int(sys.argv[2])
BUFSIZ = 1024
ADDR = (HOST, PORT)

tcpCliSock = socket(AF_INET6 if ':' in HOST else AF_INET, SOCK_STREAM)
tcpCliSock.connect(ADDR)

for data in sys.argv[3:]:
    tcpCliSock.send(data.encode('utf-8'))
    data = tcpCliSock.recv(BUFSIZ)
    if not data:
        break
    print(data.decode('utf-8'))

tcpCliSock.close()
