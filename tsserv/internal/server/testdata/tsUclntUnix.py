#!/usr/bin/env python3
"""tsUclntUnix.py: tsUclnt.py over a Unix datagram socket, in Python 3.

A Unix datagram client has no address unless it binds one, and the server
has nowhere to send the reply without it, so this client binds CLIENTPATH
first (and removes it at the end):

    tsUclntUnix.py SERVERPATH CLIENTPATH MESSAGE...
"""

import os
import sys
from socket import *

ADDR = sys.argv[1]
CLIENT = sys.argv[2]
BUFSIZ = 1024

udpCliSock = socket(AF_UNIX, SOCK_DGRAM)
udpCliSock.bind(CLIENT)
try:
    for data in sys.argv[3:]:
        udpCliSock.sendto(data.encode('utf-8'), ADDR)
        data, addr = udpCliSock.recvfrom(BUFSIZ)
        if not data:
            break
        print(data.decode('utf-8'))
finally:
    udpCliSock.close()
    os.remove(CLIENT)
