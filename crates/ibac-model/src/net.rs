//! Ports, IP ranges and domain names as intents write them.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses an IP address or CIDR range. A range with host bits set is refused,
/// with the range the user most likely meant.
pub fn parse_ip_range(text: &str) -> Result<IpNet, String> {
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(addr));
    }
    let net: IpNet = text.parse().map_err(|_| {
        "write an address (`203.0.113.7`) or a range (`203.0.113.0/24`)".to_string()
    })?;
    if net.trunc() != net {
        return Err(format!(
            "host bits are set: did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Checks a domain name, optionally starting with `*.` to cover subdomains.
pub fn check_domain(text: &str) -> Result<(), &'static str> {
    let name = text.strip_prefix("*.").unwrap_or(text);
    if name.contains('*') {
        return Err("`*` may only start a domain, as `*.example.com`");
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > 253 {
        return Err("a domain name has 1 to 253 characters");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err("each label has 1 to 63 letters, digits or inner `-`");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_ranges() {
        assert_eq!(
            parse_ip_range("203.0.113.0/24").unwrap().to_string(),
            "203.0.113.0/24"
        );
        assert_eq!(
            parse_ip_range("10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        assert_eq!(
            parse_ip_range("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(
            parse_ip_range("10.0.0.1/24")
                .unwrap_err()
                .contains("10.0.0.0/24")
        );
        assert!(parse_ip_range("10.0.0.0/33").is_err());
        assert!(parse_ip_range("example.com").is_err());
    }

    #[test]
    fn domains() {
        assert!(check_domain("api.example.com").is_ok());
        assert!(check_domain("*.example.org").is_ok());
        assert!(check_domain("a.*.org").is_err());
        assert!(check_domain("-a.org").is_err());
        assert!(check_domain("a..org").is_err());
        assert!(check_domain("").is_err());
    }
}
