#!/usr/bin/env python3
"""tsTclntUnix.py: tsTclnt.py over a Unix stream socket, in Python 3.

One connection to the socket file; each message goes out as bare text with
no newline, and what one recv(BUFSIZ) brings back is printed:

    tsTclntUnix.py PATH MESSAGE...
"""

import sys
from socket import *

ADDR = sys.argv[1]
BUFSIZ = 1024

tcpCliSock = socket(AF_UNIX, SOCK_STREAM)
tcpCliSock.connect(ADDR)

for data in sys.argv[2:]:
    tcpCliSock.send(data.encode('utf-8'))
    data = tcpCliSock.recv(BUFSIZ)
    if not data:
        break
    print(data.decode('utf-8'))

tcpCliSock.close()
