/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Building the frames the dataplane and the generator send: an Ethernet + IPv4 + UDP datagram
 * (IPv4 checksum computed, UDP checksum 0, DF set) and an ARP request or reply. Addresses are in
 * host order; the frame is appended to an mbuf from pool mp.
 */
#ifndef DP_NET_H
#define DP_NET_H

#include <string.h>

#include <rte_arp.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

struct dp_endpoint {
	struct rte_ether_addr mac;
	uint32_t ip;
	uint16_t udp;
};

/* A datagram from src to dst with len payload bytes at *pl; NULL if no mbuf or room. */
static inline struct rte_mbuf *
dp_udp_new(struct rte_mempool *mp, const struct dp_endpoint *src, const struct dp_endpoint *dst,
           uint16_t len, uint8_t **pl)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	struct rte_ether_hdr *eth;
	struct rte_ipv4_hdr *ip;
	struct rte_udp_hdr *udp;

	if (!m)
		return NULL;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(
	    m, (uint16_t)(sizeof(*eth) + sizeof(*ip) + sizeof(*udp) + len));
	if (!eth) {
		rte_pktmbuf_free(m);
		return NULL;
	}
	ip = (struct rte_ipv4_hdr *)(eth + 1);
	udp = (struct rte_udp_hdr *)(ip + 1);
	rte_ether_addr_copy(&dst->mac, &eth->dst_addr);
	rte_ether_addr_copy(&src->mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
	*ip = (struct rte_ipv4_hdr){
	    .version_ihl = RTE_IPV4_VHL_DEF,
	    .total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + len)),
	    .fragment_offset = rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG),
	    .time_to_live = 64,
	    .next_proto_id = IPPROTO_UDP,
	    .src_addr = rte_cpu_to_be_32(src->ip),
	    .dst_addr = rte_cpu_to_be_32(dst->ip),
	};
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	*udp = (struct rte_udp_hdr){
	    .src_port = rte_cpu_to_be_16(src->udp),
	    .dst_port = rte_cpu_to_be_16(dst->udp),
	    .dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + len)),
	};
	*pl = (uint8_t *)(udp + 1);
	return m;
}

/*
 * An ARP request from (mac, ip) for tip (broadcast), or, when tha is not NULL, a reply to
 * (tha, tip). NULL if no mbuf.
 */
static inline struct rte_mbuf *
dp_arp_new(struct rte_mempool *mp, const struct rte_ether_addr *mac, uint32_t ip,
           const struct rte_ether_addr *tha, uint32_t tip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
	struct rte_ether_hdr *eth;
	struct rte_arp_hdr *arp;

	if (!m)
		return NULL;
	eth = (struct rte_ether_hdr *)rte_pktmbuf_append(m, sizeof(*eth) + sizeof(*arp));
	arp = (struct rte_arp_hdr *)(eth + 1);
	if (tha)
		rte_ether_addr_copy(tha, &eth->dst_addr);
	else
		memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
	rte_ether_addr_copy(mac, &eth->src_addr);
	eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
	*arp = (struct rte_arp_hdr){
	    .arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER),
	    .arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4),
	    .arp_hlen = RTE_ETHER_ADDR_LEN,
	    .arp_plen = 4,
	    .arp_opcode = rte_cpu_to_be_16(tha ? RTE_ARP_OP_REPLY : RTE_ARP_OP_REQUEST),
	};
	rte_ether_addr_copy(mac, &arp->arp_data.arp_sha);
	arp->arp_data.arp_sip = rte_cpu_to_be_32(ip);
	if (tha)
		rte_ether_addr_copy(tha, &arp->arp_data.arp_tha);
	arp->arp_data.arp_tip = rte_cpu_to_be_32(tip);
	return m;
}

#endif /* DP_NET_H */
